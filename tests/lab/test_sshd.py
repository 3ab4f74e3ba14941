"""sshd in the lab's nodes: the admin host reaches every node over the admin network with the
lab's own key and known_hosts, host keys pinned, and nothing of the machine's own ssh set-up
(/etc/ssh, root's ~/.ssh) is read or written."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.root, pytest.mark.lab]


def test_admin_host_reaches_every_node_over_ssh(lab) -> None:
    from envrouter.lab.sshd import available, client_config_path, ssh_argv, ssh_nodes

    if not available():
        pytest.skip("openssh-server is not installed (make deps-packaging)")
    home_ssh_before = os.path.exists(os.path.expanduser("~/.ssh"))
    assert lab.state.get("sshd"), "lab up did not start sshd"
    for node in ssh_nodes(lab):
        out = lab.exec_in("master", ssh_argv(lab, node, ["hostname"]), check=False,
                          timeout=30)
        assert out.returncode == 0, f"{node}: {out.stderr}"
        assert out.stdout.strip() == node
    # a node that is not in the lab's known_hosts is refused, not trusted on first use
    config = client_config_path(lab)
    refused = lab.exec_in("master", ["ssh", "-F", config, "-o", "HostKeyAlias=stranger",
                                     ssh_nodes(lab)[0], "true"], check=False, timeout=30)
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr
    assert os.path.exists(os.path.expanduser("~/.ssh")) == home_ssh_before
