"""Files under a configurable root: read, atomic write, remove (only our own)."""

from __future__ import annotations

import os
import tempfile

from envrouter.agent.desired import FILE_MARKER
from envrouter.errors import InfraError


def read_file(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InfraError(f"cannot read {path}: {exc}") from exc


def write_atomic(path: str, content: str, mode: int = 0o644) -> None:
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        # /etc/resolv.conf may be a symlink elsewhere: replace the link itself, as resolvers do
        fd, tmp = tempfile.mkstemp(prefix=".envrouter-", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise InfraError(f"cannot write {path}: {exc}") from exc


def is_ours(content: str | None) -> bool:
    return content is not None and content.startswith(FILE_MARKER)


def remove_file(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
