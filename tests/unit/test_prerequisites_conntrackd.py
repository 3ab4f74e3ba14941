"""`prerequisites.conntrackd_warning`: envrouter's conntrackd names its feature in `conntrackd -v`
(packaging/conntrackd's last patch); any other daemon gets a warning that says what it loses and
how to install the right one. The two daemons' outputs are small scripts here: only one conntrackd
can be installed at a time (the real one is checked at the suite's start, tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from envrouter.prerequisites import CONNTRACKD_FEATURES, conntrackd_warning

STOCK = "Connection tracking userspace daemon v1.4.7. Licensed under GPLv2.\n(C) 2006-2009 x\n"


def _program(tmp_path: Path, output: str) -> str:
    path = tmp_path / "conntrackd"
    path.write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n")
    path.chmod(0o755)
    return str(path)


def test_envrouter_build_has_no_warning(tmp_path: Path) -> None:
    out = STOCK.replace("1.4.7", "1.4.8") + f"Features: {' '.join(CONNTRACKD_FEATURES)}\n"
    assert conntrackd_warning(_program(tmp_path, out)) is None


def test_an_earlier_build_names_what_it_lacks(tmp_path: Path) -> None:
    out = STOCK.replace("1.4.7", "1.4.8") + "Features: nat-port-sync reply-holder-replace\n"
    warning = conntrackd_warning(_program(tmp_path, out))
    assert warning is not None
    assert "lacks destroy-by-id, new-as-new" in warning and "make conntrackd-install" in warning


def test_debian_daemon_is_named_with_the_fix(tmp_path: Path) -> None:
    warning = conntrackd_warning(_program(tmp_path, STOCK))
    assert warning is not None
    assert "v1.4.7" in warning and "make conntrackd-install" in warning


def test_a_feature_list_without_it_is_not_enough(tmp_path: Path) -> None:
    assert conntrackd_warning(_program(tmp_path, STOCK + "Features: other\n")) is not None


def test_no_daemon_is_left_to_the_missing_programs_check(tmp_path: Path) -> None:
    assert conntrackd_warning(str(tmp_path / "absent")) is None
