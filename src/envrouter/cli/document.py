"""envrouter document: a node's deployment document, or the document's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from envrouter.cli.common import CommandGroup, DatabaseUrl, open_database
from envrouter.errors import NotFoundError, ValidationError

app = CommandGroup(help="Print a node's deployment document, or its schema.", add_completion=False)


def schema_text() -> str:
    from envrouter.document import document_json_schema

    return json.dumps(document_json_schema(), indent=2, sort_keys=True) + "\n"


@app.command()
def document(
    env: str = typer.Argument(None, help="environment name"),
    node: str = typer.Argument(None, help="node hostname"),
    schema: bool = typer.Option(False, "--schema", help="print the JSON Schema instead"),
    write: Path = typer.Option(
        None, "--write", help="with --schema: write it to this file (docs/document.schema.json)"
    ),
    database_url: DatabaseUrl = None,
) -> None:
    """Print NODE's deployment document (JSON) from environment ENV."""
    if schema:
        text = schema_text()
        if write:
            write.write_text(text)
            typer.echo(f"wrote {write}", err=True)
        else:
            typer.echo(text, nl=False)
        return
    if not env or not node:
        raise ValidationError("document", "ENV NODE", "give an environment and a node, or --schema")
    from envrouter.model import service

    with open_database(database_url).reading() as session:
        env_row = service.environment_by_name(session, env)
        node_row = service.node_by_hostname(session, node)
        if node_row.environment_id != env_row.id:
            raise NotFoundError(f"node in environment {env!r}", node)
        doc = service.node_document(session, node_row)
    typer.echo(json.dumps(doc.model_dump(mode="json"), indent=2))
