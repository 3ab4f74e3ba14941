"""envrouter metrics — this controller's gauges in the Prometheus text format.

For node_exporter's textfile collector: run it from cron (or a systemd timer) with
``--output /var/lib/node_exporter/textfile_collector/envrouter.prom``; the file is written
atomically (a temporary file in the same directory, then rename), so node_exporter never reads
half a file. Why a textfile and not a resident HTTP endpoint: the HA design wants no resident
Python process on a controller (memory, one more thing to fail over); node_exporter already
runs there. See docs/operations.md.
"""

from __future__ import annotations

import sys

import typer

from envrouter.cli.common import CommandGroup
from envrouter.cli.status import DocumentOpt, NamespaceOpt, RunRootOpt, collect_status
from envrouter.files import write_atomic

app = CommandGroup(help="Prometheus text metrics of this controller.", add_completion=False)


@app.command()
def metrics(
    output: str | None = typer.Option(None, "--output", "-o",
                                      help="write to this file atomically (textfile collector)"
                                           "; default: stdout"),
    namespace: str | None = NamespaceOpt,
    document: str = DocumentOpt,
    run_root: str = RunRootOpt,
) -> None:
    """The same facts as `envrouter status`, as Prometheus gauges and counters."""
    from envrouter.ops.assess import assess
    from envrouter.ops.metrics import registry_for, render

    st = collect_status(document, namespace, run_root)
    text = render(registry_for(st, assess(st)))
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text)
