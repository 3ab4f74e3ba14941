"""Best-effort teardown for the namespace tier's fixtures: runs also when the test failed, and
goes on past what is already gone (tests/netns is on sys.path: pytest puts the directory of a
test module without __init__.py there)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from envrouter.services.process import Daemon


def stop_daemons(daemons: Iterable[Daemon]) -> None:
    """Stop every daemon; one that fails to stop does not keep the others running (the
    namespaces are removed next)."""
    for d in daemons:
        with contextlib.suppress(Exception):
            d.stop()


def remove_namespaces(names: Iterable[str]) -> None:
    from pyroute2 import netns

    for ns in names:
        with contextlib.suppress(OSError):
            netns.remove(ns)
