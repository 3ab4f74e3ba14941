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


def _key(text: str) -> int:
    """32-bit FNV-1a of text: a file name per parameter set, without importing binascii or
    zlib for crc32 (half a millisecond of a monitor's CPU)."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def memo_path(directory: str, agent: str, params: dict[str, str]) -> str:
    key = _key(repr(sorted(params.items())))
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


# -- the verdict: a recurring monitor's answer, for the agent's sh launcher -----------------
# The launcher of a Python agent that declares `monitor_inputs` (envrouter.ha.install) computes
# the stamp of the monitor's inputs itself — the agent's parameters and the identity of the
# document and of the renderers' files, one `stat` — and passes it in this variable. When a
# recurring monitor's answer rests only on facts the launcher can check in sh (a live PID with its
# command name, a path that exists or does not, a file holding a line, a client command that
# succeeds within a time and the lines its output starts with), the Python run records the answer
# with those facts and that stamp; the next recurring monitor is answered by the launcher while
# the stamp and every fact still hold, without starting Python. Any fact that no longer holds
# sends it to Python, which decides (docs/ha.md, "Agent cost"). What to conclude is decided only
# by the Python agent: the launcher only compares what it recorded.
INPUTS_ENV = "ENVROUTER_OCF_INPUTS"
VERDICT_SUFFIX = ".verdict"
VERDICT_COMMANDS = ("conntrackd",)  # the only commands a verdict may name as a fact


def verdict_path(run_root: str, agent: str) -> str:
    return os.path.join(run_root, ".ocf", agent + VERDICT_SUFFIX)


class Verdict:
    """The facts this recurring monitor's answer rests on, recorded when it ends (if none of
    them was spoiled: an answer that changed something, or rests on what sh cannot check)."""

    __slots__ = ("path", "stamp", "facts", "spoiled", "ran")

    def __init__(self, path: str, stamp: str) -> None:
        self.path = path
        self.stamp = stamp
        self.facts: list[str] = []
        self.spoiled = False
        self.ran = False  # a `succeeds` fact was recorded: `says` facts may follow

    def fact(self, kind: str, *values: str) -> None:
        # one line of words: a value the launcher could not split back is not recorded
        if any(not v or any(c.isspace() for c in v) for v in values):
            self.spoiled = True
        self.facts.append(" ".join((kind, *values)))

    def live_pid(self, pid_file: str, comm: str) -> None:
        """The PID in pid_file is a live (not zombie) process named comm (status.pid_running)."""
        self.fact("pid", pid_file, comm[:15])

    def exists(self, path: str) -> None:
        self.fact("path", path)

    def has_line(self, path: str, line: str) -> None:
        self.fact("line", path, line)

    def absent(self, path: str) -> None:
        self.fact("absent", path)

    def succeeds(self, timeout: int, *argv: str) -> None:
        """argv exits 0 within timeout s (a command of VERDICT_COMMANDS only); its output is
        what the `says` facts after it read."""
        if argv[0] not in VERDICT_COMMANDS:
            self.spoiled = True
        self.fact("run", str(timeout), *argv)
        self.ran = True

    def says(self, number: int, text: str) -> None:
        """Line `number` (from 1) of the output of the command of the last `succeeds` is
        `text`, to the byte: blanks inside it are kept, none may stand at either end (the
        launcher's `read` would drop them)."""
        if (not self.ran or number < 1 or not text or text != text.strip()
                or any(c in text for c in "\n\r\0")):
            self.spoiled = True
        self.facts.append(f"says {number} {text}")

    def record(self, rc: int) -> None:
        """Write the verdict (replacing the file whole), or remove a stale one if spoiled."""
        if self.spoiled or not self.facts or "\n" in self.stamp:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            return
        text = "\n".join([str(rc), self.stamp, *self.facts, ""])
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)


def start_verdict(env: dict[str, str], run_root: str, agent: str) -> Verdict | None:
    """A verdict for this run if it is a recurring monitor started by a launcher that
    checks verdicts (the stamp in INPUTS_ENV)."""
    stamp = env.get(INPUTS_ENV, "")
    if not stamp or env.get("OCF_RESKEY_CRM_meta_interval", "0") in ("0", ""):
        return None
    return Verdict(verdict_path(run_root, agent), stamp)
