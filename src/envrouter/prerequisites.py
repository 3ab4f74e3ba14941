"""The programs envrouter, its lab, its tests and its benchmarks run, and their Debian packages.

The table is ``packaging/tools.tsv`` (in a checkout) or ``/usr/share/envrouter/tools.tsv`` (the
Debian package). It is the one list: the Makefile installs its packages, the test suite and
``lab up`` check its programs before they start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "packaging" / "tools.tsv",
    Path("/usr/share/envrouter/tools.tsv"),
)
SCOPES = ("runtime", "lab", "test", "packaging", "bench")


@dataclass(frozen=True)
class Tool:
    program: str  # a name looked up on PATH, an absolute path, or "-" (nothing to check)
    package: str
    scope: str

    def installed(self) -> bool:
        if self.program == "-":
            return True
        if self.program.startswith("/"):
            return os.access(self.program, os.X_OK)
        return shutil.which(self.program) is not None


def table_path() -> Path | None:
    override = os.environ.get("ENVROUTER_TOOLS_TABLE")
    if override:
        return Path(override)
    return next((p for p in _CANDIDATES if p.is_file()), None)


def read_table(path: Path) -> list[Tool]:
    tools = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[2] not in SCOPES:
            raise ValueError(f"{path}:{number}: expected 'program<TAB>package<TAB>scope' with a "
                             f"scope of {', '.join(SCOPES)}: {line!r}")
        tools.append(Tool(*fields))
    return tools


def missing(scopes: Collection[str], path: Path | None = None) -> list[Tool]:
    """The tools of these scopes that are not installed (nothing if no table can be found)."""
    path = path or table_path()
    if path is None:
        return []
    return [t for t in read_table(path) if t.scope in scopes and not t.installed()]


def describe_missing(tools: list[Tool], install_hint: str) -> str:
    lines = [f"  {t.program:<40} (Debian package {t.package})" for t in tools]
    packages = " ".join(sorted({t.package for t in tools}))
    return ("these programs are missing:\n" + "\n".join(lines)
            + f"\ninstall them with `{install_hint}` (apt-get install {packages})")


# What envrouter's conntrackd (packaging/conntrackd) names in `conntrackd -v`, one word per fix
# (docs/ha.md "At scale"): it sends the NAT port of every NATed flow, a peer replaces the copy
# holding a new flow's reply tuple, a late destroy event ends only the flow it is about, and a
# new flow's first message announces it as new (a peer replaces its copy of the tuple).
CONNTRACKD_FEATURES = ("nat-port-sync", "reply-holder-replace", "destroy-by-id", "new-as-new")


def conntrackd_warning(program: str = "conntrackd") -> str | None:
    """Why the installed conntrackd can lose NATed flows at failover, or None when it is
    envrouter's current build (or there is none: `missing` reports that)."""
    try:
        out = subprocess.run([program, "-v"], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return None
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"conntrackd -v failed: {e}"
    features = next((line.split(":", 1)[1].split() for line in out.stdout.splitlines()
                     if line.startswith("Features:")), [])
    lacking = [f for f in CONNTRACKD_FEATURES if f not in features]
    if not lacking:
        return None
    version = out.stdout.splitlines()[0].strip() if out.stdout.strip() else "unknown version"
    return (f"conntrackd ({version}) is not envrouter's current build (it lacks "
            f"{', '.join(lacking)}): NATed flows can be lost at failover with a large table; "
            "install it with `make conntrackd-install` (packaging/conntrackd)")
