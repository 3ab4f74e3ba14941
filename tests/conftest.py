"""Suite-wide test configuration.

Tiers (see the markers in pyproject.toml): tests/unit is pure; tests/netns, tests/lab need root
and create their own network namespaces (never the machine's own); tests/ui drive Debian's
chromium; tests/db also run against a real PostgreSQL that the fixtures start.
"""

from __future__ import annotations

import os

import pytest

# Cheap tiers first; the lab last, and within it the upgrade test (which builds a lab of its
# own) and the package test (its own lab, from the installed packages) before the tests that
# share one session-wide lab, so two labs never run at once.
_TIER_ORDER = ("unit", "api", "db", "netns", "ui", "lab/test_upgrade.py", "lab/test_package.py",
               "lab")


def _tier(item: pytest.Item) -> int:
    path = item.path.as_posix()
    for rank, tier in enumerate(_TIER_ORDER):
        if f"/tests/{tier}" in path:
            return rank
    return len(_TIER_ORDER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_tier)  # stable: the order inside a file is kept
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates network namespaces")
    for item in items:
        if "root" in item.keywords or "lab" in item.keywords:
            item.add_marker(skip)
