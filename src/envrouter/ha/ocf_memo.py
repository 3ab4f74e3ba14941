"""What an OCF agent's monitor recorded of an earlier run, valid while its inputs are the same.

A monitor runs every few seconds, each time a new process: what it needs of the deployment
document (a namespace, paths, what to look at) is a pure function of the document, the agent's
parameters and the package's code, so the run that computed it from the document records it
with a stamp of those inputs — the identity (inode, size, mtime, ctime) of the document and of
the code's files — and a later run whose stamp is the same reads it back instead of parsing the
document (pydantic) again. Standard library os only on the reading side.
"""

from __future__ import annotations

import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEPARATOR = "\n\0\n"


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def inputs_stamp(params: dict[str, str], document: str, code: tuple[str, ...]) -> str:
    """The stamp of the parameters, the document file and the package's files or directories
    `code` (relative to the envrouter package). Raises OSError if the document is missing."""
    parts = [repr(sorted(params.items())), _identity(document)]
    for rel in code:
        path = os.path.join(_PACKAGE, rel)
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if not name.startswith(".") and os.path.isfile(full):
                    parts.append(f"{rel}/{name}={_identity(full)}")
        else:
            parts.append(f"{rel}={_identity(path)}")
    return "\n".join(parts)


def memo_path(directory: str, agent: str, params: dict[str, str]) -> str:
    import binascii

    key = binascii.crc32(repr(sorted(params.items())).encode())
    return os.path.join(directory, ".ocf", f"{agent}-{key:08x}")


def read_memo(path: str, stamp: str | None, fields: int) -> list[str] | None:
    """The recorded fields if they were recorded with this stamp."""
    if stamp is None:
        return None
    try:
        with open(path) as f:
            recorded = f.read().split(SEPARATOR)
    except OSError:
        return None
    if len(recorded) != fields + 1 or recorded[0] != stamp:
        return None
    return recorded[1:]


def write_memo(path: str, stamp: str, values: list[str]) -> None:
    """Record values under stamp (raises what writing raises; callers log and go on)."""
    from envrouter.files import write_if_changed

    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_if_changed(path, SEPARATOR.join([stamp, *values]))
