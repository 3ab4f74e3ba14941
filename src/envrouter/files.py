"""Files: read, atomic write, remove. The one implementation every layer uses.

An atomic write goes to a unique temporary file in the same directory, is flushed to disk
(fsync) and then renamed over the target: a reader sees the old or the new content, never a
part, and a crash leaves no half-written file (nor a fixed-name temp file another writer
could clobber). `durable=False` leaves out the fsync, for a record rewritten several times a
second that a crash may lose (the lab's progress files): still atomic for its readers.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from envrouter.errors import InfraError


def read_file(path: str | os.PathLike[str]) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InfraError(f"cannot read {path}: {exc}") from exc


def write_atomic(path: str | os.PathLike[str], content: str, mode: int = 0o644, *,
                 durable: bool = True) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        # /etc/resolv.conf may be a symlink elsewhere: replace the link itself, as resolvers do
        fd, tmp = tempfile.mkstemp(prefix=".envrouter-", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(content)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise InfraError(f"cannot write {path}: {exc}") from exc


def write_json(path: str | os.PathLike[str], data: Any, *, durable: bool = True) -> None:
    """`data` as JSON, written atomically."""
    write_atomic(path, json.dumps(data), durable=durable)


def write_if_changed(path: str | os.PathLike[str], content: str, mode: int = 0o644) -> bool:
    """Write atomically unless the file already holds `content`; True if it changed."""
    if read_file(path) == content:
        return False
    write_atomic(path, content, mode)
    return True


def remove_file(path: str | os.PathLike[str]) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
