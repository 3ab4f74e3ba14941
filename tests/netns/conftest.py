from __future__ import annotations

import pytest
from agent_world import World


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.destroy()


@pytest.fixture(scope="module")
def vip_agent(tmp_path_factory) -> str:
    """The HA layer's VIP agent, installed as the package installs it (its one implementation)."""
    from envrouter.ha.install import install_agents

    root = tmp_path_factory.mktemp("ocf")
    install_agents(str(root))
    return str(root / "resource.d" / "envrouter" / "vip")
