"""The command line (`envrouter`, envrouter.cli.main)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports_without_gc() -> Iterator[None]:
    """Import a command's modules with Python's cyclic garbage collector paused: an import
    makes many objects and few cycles, and the collections the allocations trigger meanwhile
    cost a short command ~6 % of its CPU (`envrouter agent apply`, docs/ha.md "Agent cost").
    The collector runs again afterwards (a long-running command, `serve`, needs it), with the
    objects made so far left out of its collections (`gc.freeze`: modules live until exit)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
