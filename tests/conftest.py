"""Suite-wide test configuration.

Tiers (see the markers in pyproject.toml): tests/unit is pure; tests/netns, tests/lab need root
and create their own network namespaces (never the machine's own); tests/ui drive Debian's
chromium; tests/db also run against a real PostgreSQL that the fixtures start.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates network namespaces")
    for item in items:
        if "root" in item.keywords or "lab" in item.keywords:
            item.add_marker(skip)
