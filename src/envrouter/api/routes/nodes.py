"""Nodes and their deployment documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from envrouter.api.deps import SECURITY, Id, ReadDB, Writer, deleted, reader, written
from envrouter.api.schemas import READ, WRITE, NodeCreate, NodePublic, NodeUpdate
from envrouter.db.tables import NodeRow
from envrouter.document import DeploymentDocument
from envrouter.errors import NotFoundError, ValidationError
from envrouter.model import rules, service

router = APIRouter(prefix="/api/v1", tags=["nodes"])


def _public(db, rows) -> list[NodePublic]:  # noqa: ANN001
    addrs = service.node_addresses_public(db, rows)
    return [
        NodePublic(
            id=r.id,
            environment_id=r.environment_id,
            hostname=r.hostname,
            roles=list(r.role_list),
            status=r.status,
            addresses=addrs[r.id]["addresses"],
            addresses6=addrs[r.id]["addresses6"],
            namespace_address=addrs[r.id]["namespace_address"],
        )
        for r in rows
    ]


@router.get("/environments/{env_id}/nodes", response_model=list[NodePublic], responses=READ)
def list_nodes(env_id: Id, db: ReadDB) -> list[NodePublic]:
    service.get_environment_row(db, env_id)
    rows = db.scalars(
        select(NodeRow).where(NodeRow.environment_id == env_id).order_by(NodeRow.id)
    ).all()
    return _public(db, rows)


@router.post(
    "/environments/{env_id}/nodes", response_model=NodePublic, status_code=201, responses=WRITE
)
def create_node(env_id: Id, body: NodeCreate, database: Writer) -> NodePublic:
    fields = body.model_dump()
    return written(database, lambda db: service.create_node(db, env_id, fields), _public)


@router.get("/nodes/{node_id}", response_model=NodePublic, responses=READ)
def get_node(node_id: Id, db: ReadDB) -> NodePublic:
    return _public(db, [service.get_node_row(db, node_id)])[0]


@router.patch("/nodes/{node_id}", response_model=NodePublic, responses=WRITE)
def update_node(node_id: Id, body: NodeUpdate, database: Writer) -> NodePublic:
    changes = body.model_dump(exclude_unset=True)
    return written(database, lambda db: service.update_node(db, node_id, changes), _public)


@router.delete("/nodes/{node_id}", status_code=204, responses=WRITE)
def delete_node(node_id: Id, database: Writer) -> Response:
    return deleted(database, lambda db: service.delete_node(db, node_id))


def _document_json(request: Request, **key: object) -> tuple[int | None, int, str]:
    """Auth, then the cached document, in one worker-thread hop: the agents' hot path (a
    dependency chain would cost one thread hop per dependency). Also the database generation
    sampled before the read, for the fast path (api/fastpath.py)."""
    reader(request)
    generation = request.app.state.fast_documents.generation()
    with request.app.state.db.read_session() as session:
        try:
            env_id, body = request.app.state.documents.document_json(session, **key)
        finally:
            session.rollback()
    return generation, env_id, body


def _hostname_key(hostname: str) -> str:
    """A hostname in a document's path; one that no node can have is not found (404)."""
    try:
        return rules.validate_hostname(hostname)
    except ValidationError:
        raise NotFoundError("node", hostname) from None


def _answer(request: Request, generation: int | None, body: str) -> Response:
    request.app.state.fast_documents.remember(
        request.scope["path"], generation, body, request.scope.get("route")
    )
    return Response(body, media_type="application/json")


# The document routes answer from the cache (and the fast path) as JSON text: the model and
# the security are declared for the OpenAPI.
_DOCUMENT_ROUTE: dict = {"response_model": DeploymentDocument, "responses": READ,
                         "openapi_extra": {"security": SECURITY}}


@router.get("/nodes/by-hostname/{hostname}/document", summary="The node's deployment document",
            **_DOCUMENT_ROUTE)
async def document_by_hostname(
    hostname: Annotated[str, Path(max_length=253)], request: Request
) -> Response:
    key = {"hostname": _hostname_key(hostname)}
    generation, _env_id, body = await run_in_threadpool(_document_json, request, **key)
    return _answer(request, generation, body)


@router.get("/environments/{env_id}/nodes/{node}/document",
            summary="The node's deployment document, by node id or hostname", **_DOCUMENT_ROUTE)
async def document(
    env_id: Id,
    node: Annotated[str, Path(max_length=253, description="the node's id or its hostname")],
    request: Request,
) -> Response:
    if node.isdigit():
        node_id = int(node)
        if not 1 <= node_id <= 2**31 - 1:
            raise NotFoundError("node", node)
        key: dict[str, object] = {"node_id": node_id}
    else:
        key = {"hostname": _hostname_key(node)}
    generation, found_env, body = await run_in_threadpool(_document_json, request, **key)
    if found_env != env_id:
        raise NotFoundError("node", next(iter(key.values())))
    return _answer(request, generation, body)


@router.get(
    "/environments/{env_id}/documents",
    response_model=dict[str, DeploymentDocument],
    summary="Every node's deployment document, by hostname",
    responses=READ,
)
def documents(env_id: Id, db: ReadDB) -> Response:
    docs = service.environment_documents(db, env_id)
    body = "{" + ",".join(f'"{h}":{d.model_dump_json()}' for h, d in docs.items()) + "}"
    return Response(body, media_type="application/json")
