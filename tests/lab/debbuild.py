"""The Debian packages the package test installs: `make deb` (dh-virtualenv, lintian; 2–3 min
from a fresh clone), started in the background as soon as the session knows it will run that
test, so that the build uses the core the unit and namespace tests leave idle instead of
waiting until the test's turn. The test's fixture waits for it (`built`), and builds itself
when nothing was started or the tree changed since (`up_to_date` is the one check of both).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEB_DIR = os.path.join(REPO, "build", "deb")
LOG = os.path.join(REPO, "build", "deb-background.log")
PACKAGES = ("envrouter", "envrouter-controller", "envrouter-server")
# what goes into the packages: a change elsewhere (docs, tests) needs no new build
PACKAGED = ("src", "debian", "pyproject.toml", "Makefile")
TIMEOUT = 1200

_build: subprocess.Popen | None = None


def packaged_files(root: str) -> dict[str, bytes]:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                            "--", *PACKAGED], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    out = {}
    for f in files:
        with contextlib.suppress(OSError), open(os.path.join(root, f), "rb") as fh:
            out[f] = fh.read()
    return out


def debs(directory: str = DEB_DIR) -> dict[str, str]:
    """{package: path} of the .deb files in `directory`."""
    out = {}
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            if name.endswith(".deb"):
                out[name.split("_", 1)[0]] = os.path.join(directory, name)
    return out


def up_to_date() -> bool:
    """build/deb has the three packages, built from this tree's packaged files (`make deb`
    keeps the copy it built from in build/deb/src)."""
    return (set(debs()) == set(PACKAGES)
            and packaged_files(REPO) == packaged_files(os.path.join(DEB_DIR, "src")))


def start() -> None:
    """`make deb` in the background (its own process group, output in build/deb-background.log)
    unless the packages are up to date."""
    global _build
    if _build is not None or up_to_date():
        return
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    with open(LOG, "w") as log:
        _build = subprocess.Popen(["make", "deb"], cwd=REPO, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def built() -> str | None:
    """Wait for the background build if one was started; None when it succeeded, else the
    reason with the end of its log. Builds (in the foreground) when the packages are not up to
    date afterwards."""
    global _build
    if _build is not None:
        proc, _build = _build, None
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            stop(proc)
            return f"make deb (background) still running after {TIMEOUT} s"
        if rc != 0:
            with open(LOG, errors="replace") as f:
                return f"make deb (background) exited {rc}:\n{f.read()[-4000:]}"
    if up_to_date():
        return None
    proc = subprocess.run(["make", "deb"], cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return f"make deb exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return None


def stop(proc: subprocess.Popen | None = None) -> None:
    """End the background build (its whole process group) if it still runs: a session that
    ends before the package test (-x, an interrupt) leaves no build behind."""
    global _build
    proc = proc or _build
    _build = None
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
