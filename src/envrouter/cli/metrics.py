"""envrouter metrics — this controller's gauges in the Prometheus text format.

For node_exporter's textfile collector: run it from cron (or a systemd timer) with
``--output /var/lib/node_exporter/textfile_collector/envrouter.prom``; the file is written
atomically (a temporary file in the same directory, then rename), so node_exporter never reads
half a file. Why a textfile and not a resident HTTP endpoint: the HA design wants no resident
Python process on a controller (memory, one more thing to fail over); node_exporter already
runs there. See docs/operations.md.
"""

from __future__ import annotations

import os
import sys
import tempfile

import typer

from envrouter.cli.common import handle_errors
from envrouter.cli.status import DocumentOpt, NamespaceOpt, RunRootOpt, collect_status
from envrouter.errors import InfraError

app = typer.Typer(help="Prometheus text metrics of this controller.", add_completion=False)


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".envrouter-metrics.", dir=directory)
    except OSError as exc:
        raise InfraError(f"cannot write metrics into {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # node_exporter usually runs as another user
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@app.command()
@handle_errors
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
