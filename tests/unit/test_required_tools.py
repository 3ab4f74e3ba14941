"""The suite's start-of-run check of packaging/tools.tsv: one error naming every missing program
and its Debian package (a fresh machine without `make deps` must fail loudly, not in test 300)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from envrouter import prerequisites

ROOT = Path(__file__).resolve().parents[2]


def _collect(tier: str, path_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         f"tests/{tier}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": path_env})


def test_missing_programs_are_listed_with_their_packages(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _collect("netns", str(empty))
    if os.geteuid() != 0:  # without root the netns tier is skipped and needs no program
        assert result.returncode == 0, result.stdout + result.stderr
        return
    assert result.returncode == 4, result.stdout + result.stderr
    out = result.stdout + result.stderr
    for program, package in (("conntrackd", "conntrackd"), ("ocf-tester", "resource-agents"),
                             ("xmllint", "libxml2-utils"), ("ip", "iproute2")):
        assert f"{program} " in out and f"(Debian package {package})" in out, out
    assert "make deps" in out


def test_pure_tiers_need_no_program(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _collect("unit/test_model_rules.py", str(empty))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_the_makefile_installs_is_in_the_table() -> None:
    out = subprocess.run(["make", "-s", "-p", "-n", "help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60).stdout
    lists = {line.split(" := ")[0]: line.split(" := ")[1].split()
             for line in out.splitlines() if line.startswith("DEB_") and " := " in line}
    table = {line.split("\t")[1] for line in (ROOT / "packaging/tools.tsv").read_text().splitlines()
             if not line.startswith("#") and line.count("\t") == 2}
    assert {"DEB_RUNTIME", "DEB_TEST", "DEB_BENCH"} <= lists.keys()
    assert "libxml2-utils" in lists["DEB_TEST"]
    assert set(lists["DEB_TEST"]) | set(lists["DEB_BENCH"]) == table


def test_a_bad_table_line_is_named(tmp_path: Path) -> None:
    table = tmp_path / "tools.tsv"
    table.write_text("# comment\nip\tiproute2\truntime\nnft nftables runtime\n")
    with pytest.raises(ValueError, match=r"tools.tsv:3: expected"):
        prerequisites.read_table(table)
    table.write_text("no-such-program-here\tsome-package\tlab\nip\tiproute2\tbench\n")
    missing = prerequisites.missing(("lab",), table)
    assert [(t.program, t.package) for t in missing] == [("no-such-program-here", "some-package")]
