"""sshd in the lab's nodes (effects), so `envrouter upgrade --runner ssh` reaches them the way
it reaches real machines: the admin host (`master`) runs ssh over the admin network.

Everything lives under the lab's state dir and dies with the lab; the machine's own /etc/ssh
and root's ~/.ssh are never read or written:

- <master>/ssh/id_ed25519       the client key (generated per lab), its .pub in authorized_keys
                                (<master> = the admin host's node dir, nodes/master)
- <master>/ssh/ssh_config       the client configuration, one `Host NODE` block per node
                                (HostName = its admin address, HostKeyAlias, the key, the lab's
                                known_hosts); use it with `ssh -F` or `envrouter upgrade
                                --runner ssh --ssh-config`
- <master>/ssh/known_hosts      every node's host key, so StrictHostKeyChecking=yes holds
- <node>/ssh/                   the node's host key and sshd_config

sshd runs inside the node (its network, mount, UTS and PID namespaces) and daemonizes, so the
node's anchor reaps it; it stops with the node (power-off, `lab down`).
"""

from __future__ import annotations

import os
import subprocess

from envrouter.errors import InfraError
from envrouter.lab.nodes import Lab
from envrouter.lab.waiting import wait_for

SSHD = "/usr/sbin/sshd"
PORT = 22
PID_FILE = "/run/envrouter-lab-sshd.pid"  # in the node's own /run


def available() -> bool:
    """openssh-server and the client are installed (make deps-packaging)."""
    import shutil

    return os.path.exists(SSHD) and shutil.which("ssh") is not None \
        and shutil.which("ssh-keygen") is not None


def ssh_dir(lab: Lab) -> str:
    """The client side's files: on the admin host, in its node dir (gone with `lab down`)."""
    return os.path.join(lab.plan.node_dir("master"), "ssh")


def client_config_path(lab: Lab) -> str:
    return os.path.join(ssh_dir(lab), "ssh_config")


def ssh_nodes(lab: Lab) -> list[str]:
    """The nodes with sshd: every node the environment deploys (controllers, computes)."""
    return [n.name for n in lab.plan.deployed_nodes]


def render_sshd_config(node_ssh_dir: str, authorized_keys: str) -> str:
    """Pure: a node's sshd_config: key authentication only, root by key, nothing else."""
    return "\n".join([
        f"Port {PORT}",
        "ListenAddress 0.0.0.0",
        f"HostKey {node_ssh_dir}/ssh_host_ed25519_key",
        f"PidFile {PID_FILE}",
        f"AuthorizedKeysFile {authorized_keys}",
        # the lab's state dir may sit under /tmp (mode 1777): the file is the lab's own
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PrintMotd no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "LogLevel INFO",
        "",
    ])


def render_client_config(hosts: dict[str, str], key: str, known_hosts: str) -> str:
    """Pure: the client's ssh_config, one block per node (name -> address)."""
    lines = []
    for name, address in sorted(hosts.items()):
        lines += [
            f"Host {name}",
            f"    HostName {address}",
            f"    HostKeyAlias {name}",
            f"    Port {PORT}",
            "    User root",
            f"    IdentityFile {key}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {known_hosts}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    ConnectTimeout 5",
            "    LogLevel ERROR",
            "",
        ]
    return "\n".join(lines)


def _keygen(path: str, comment: str) -> str:
    if not os.path.exists(path):
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                               "-f", path], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise InfraError(f"ssh-keygen {path}: {proc.stderr.strip()}")
    with open(path + ".pub") as f:
        return f.read().strip()


def _write(path: str, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def prepare(lab: Lab) -> None:
    """The lab's client key, every node's host key and sshd_config, known_hosts and the
    client configuration (idempotent: existing keys are kept)."""
    d = ssh_dir(lab)
    os.makedirs(d, mode=0o700, exist_ok=True)
    client_pub = _keygen(os.path.join(d, "id_ed25519"), f"envrouter-lab@{lab.plan.prefix}")
    authorized = os.path.join(d, "authorized_keys")
    _write(authorized, client_pub + "\n")
    known, hosts = [], {}
    for name in ssh_nodes(lab):
        nd = os.path.join(lab.plan.node_dir(name), "ssh")
        os.makedirs(nd, mode=0o700, exist_ok=True)
        # the node's own /var/log: apt, run there over ssh by the upgrade, logs into apt/
        os.makedirs(os.path.join(lab.plan.node_dir(name), "log", "apt"), exist_ok=True)
        host_pub = _keygen(os.path.join(nd, "ssh_host_ed25519_key"), name)
        known.append(f"{name} {' '.join(host_pub.split()[:2])}")
        _write(os.path.join(nd, "sshd_config"), render_sshd_config(nd, authorized))
        hosts[name] = lab.plan.node(name).address("admin")
    _write(os.path.join(d, "known_hosts"), "\n".join(known) + "\n", 0o644)
    _write(client_config_path(lab),
           render_client_config(hosts, os.path.join(d, "id_ed25519"),
                                os.path.join(d, "known_hosts")), 0o644)


def start_sshd(lab: Lab, name: str) -> None:
    """sshd in the node (daemonized: its parent becomes the node's anchor), then wait until
    it accepts connections on the admin address."""
    nd = os.path.join(lab.plan.node_dir(name), "ssh")
    if not os.path.exists(os.path.join(nd, "sshd_config")):
        prepare(lab)
    # sshd's privilege separation directory, in the node's own /run
    lab.exec_in(name, ["install", "-d", "-m", "755", "/run/sshd"])
    lab.exec_in(name, [SSHD, "-f", os.path.join(nd, "sshd_config"),
                       "-E", "/var/log/envrouter-lab-sshd.log"], timeout=30)
    address = lab.plan.node(name).address("admin")
    wait_for(f"{name}: sshd on {address}:{PORT}",
             lambda: lab.exec_in(name, ["nc", "-z", "-w", "1", address, str(PORT)],
                                 check=False).returncode == 0, timeout=20)


def start_all(lab: Lab) -> None:
    prepare(lab)
    for name in ssh_nodes(lab):
        if lab.node_running(name):
            start_sshd(lab, name)
    lab.state["sshd"] = {"client_config": client_config_path(lab), "from": "master"}
    lab.save()


def ssh_argv(lab: Lab, node: str, argv: list[str]) -> list[str]:
    """ssh from the admin host to a node with the lab's configuration (run it in `master`)."""
    import shlex

    return ["ssh", "-F", client_config_path(lab), node, "--", shlex.join(argv)]
