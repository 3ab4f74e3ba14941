"""The Debian packages for real: build, install, a lab from the installed packages, an upgrade
to a newer build through `envrouter upgrade --runner ssh` while traffic flows, then purge.

- `make deb` builds the three packages (skipped when build/deb/ was built from the same
  sources; started in the background when the session is collected: tests/lab/debbuild.py);
  the "newer build" is the same packages repacked with `dpkg-deb` under version VERSION+b1
  (a rebuild: what an upgrade replaces is the point, not new code), which costs seconds
  instead of another dh-virtualenv build.
- `apt-get install ./envrouter_….deb ./envrouter-controller_….deb ./envrouter-server_….deb`,
  then the units: `systemd-analyze verify`, and their ExecStart lines run by hand (there is no
  systemd here): envrouter-serve as its User= with its EnvironmentFile= until /healthz answers,
  envrouter-metrics inside a controller.
- `lab up --installed`: the nodes and the control plane run /usr/bin/envrouter and the
  package's OCF agents, sshd runs in every node.
- From the admin host (`master`), `envrouter upgrade --runner ssh --package-file NEW...`: per
  node the packages are upgraded (controllers in node maintenance), over ssh with the lab's own
  key and known_hosts. Asserted: the packages are at the new version, the agents were replaced
  (new inodes), the VIPs never left their holder, and every TCP, UDP and ICMP flow from the
  computes survived.
- Purge, and nothing the packages put on the machine is left. The purge also runs when the
  test fails (fixture).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import debbuild
import pytest

from envrouter.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.lab]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = debbuild.PACKAGES
UNITS = ("envrouter-serve.service", "envrouter-metrics.service", "envrouter-metrics.timer")
UNIT_DIR = "/lib/systemd/system"
# what the packages' maintainer scripts and units create beside their files
RUNTIME_PATHS = ("/etc/envrouter", "/var/lib/envrouter/server", "/usr/lib/envrouter",
                 "/usr/lib/ocf/resource.d/envrouter", "/var/log/envrouter")


def _run(argv: list[str], timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def _must(argv: list[str], timeout: float = 600, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = _run(argv, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{shlex.join(argv)}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc


def _field(deb: str, name: str) -> str:
    return _must(["dpkg-deb", "-f", deb, name]).stdout.strip()


def repack(deb: str, old: str, new: str, out_dir: str) -> str:
    """The same package under version `new` (and its exact dependencies on `old` moved)."""
    work = tempfile.mkdtemp(prefix="envrouter-repack-")
    try:
        _must(["dpkg-deb", "-R", deb, work])
        control = os.path.join(work, "DEBIAN", "control")
        with open(control) as f:
            text = f.read()
        text = re.sub(r"^Version: .*$", f"Version: {new}", text, flags=re.M)
        text = text.replace(f"(= {old})", f"(= {new})")
        with open(control, "w") as f:
            f.write(text)
        name = os.path.basename(deb).split("_", 1)[0]
        arch = _field(deb, "Architecture")
        target = os.path.join(out_dir, f"{name}_{new}_{arch}.deb")
        _must(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", work, target])
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def debs() -> dict[str, dict[str, str]]:
    """{"old": {package: path}, "new": {...}}: built by `make deb` unless up to date."""
    if os.geteuid() != 0:
        pytest.skip("installing packages needs root")
    failed = debbuild.built()  # started in the background at collection (conftest)
    assert failed is None, failed
    built = debbuild.debs()
    assert set(built) == set(PACKAGES), built
    old = _field(built["envrouter"], "Version")
    new_dir = os.path.join(REPO, "build", "deb-newer")
    shutil.rmtree(new_dir, ignore_errors=True)
    os.makedirs(new_dir)
    newer = {p: repack(path, old, f"{old}+b1", new_dir) for p, path in built.items()}
    return {"old": built, "new": newer}


def _installed_versions() -> dict[str, str]:
    proc = _run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Status}\\n",
                 *PACKAGES])
    return {p: v for p, v, s in (line.split() for line in proc.stdout.splitlines())
            if s == "installed"}


def _package_paths(deb_paths: list[str]) -> set[str]:
    paths = set()
    for deb in deb_paths:
        for line in _must(["dpkg-deb", "-c", deb]).stdout.splitlines():
            path = line.split(None, 5)[5].split(" -> ")[0].lstrip(".")
            if path not in ("", "/"):
                paths.add(path.rstrip("/"))
    return paths | set(RUNTIME_PATHS)


def _systemd_leftovers() -> list[str]:
    return sorted(glob.glob("/etc/systemd/system/*/envrouter*")
                  + glob.glob("/var/lib/systemd/deb-systemd-helper-enabled/**/*envrouter*",
                              recursive=True)
                  + glob.glob("/var/lib/systemd/deb-systemd-helper-masked/*envrouter*"))


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    return _run(["apt-get", "-y", "-q", "--no-install-recommends",
                 "-o", "Dpkg::Options::=--force-confold", *args],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=900)


@pytest.fixture
def installed(debs: dict[str, dict[str, str]]) -> Iterator[dict[str, dict[str, str]]]:
    """The old packages installed; purged afterwards whatever happened, and checked to leave
    nothing behind."""
    assert not _installed_versions(), "an envrouter package is installed already"
    paths = _package_paths([*debs["old"].values(), *debs["new"].values()])
    existed = {p for p in paths if os.path.lexists(p)}
    user_before = _user_exists("envrouter")
    systemd_before = _systemd_leftovers()
    try:
        inst = _apt("install", *debs["old"].values())
        assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
        yield debs
    finally:
        purge = _apt("purge", *PACKAGES)
        assert purge.returncode == 0, purge.stdout[-3000:] + purge.stderr[-3000:]
        assert not _installed_versions()
        left = sorted(p for p in paths - existed if os.path.lexists(p))
        assert left == [], f"left on the machine after the purge: {left}"
        assert _systemd_leftovers() == systemd_before
        assert _user_exists("envrouter") == user_before


# ------------------------------------------------------------------------------ the units


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (every section; repeated keys kept in order)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def environment_file(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip().strip('"')
    return out


def exec_start_argv(settings: dict[str, list[str]]) -> tuple[list[str], dict[str, str]]:
    """ExecStart= as systemd runs it: $VAR split into words, ${VAR} kept whole, with the
    unit's Environment= and EnvironmentFile= values."""
    env: dict[str, str] = {}
    for item in settings.get("Environment", []):
        key, _, value = item.partition("=")
        env[key] = value
    for item in settings.get("EnvironmentFile", []):
        optional = item.startswith("-")
        path = item.lstrip("-")
        if optional and not os.path.exists(path):
            continue
        env.update(environment_file(path))
    argv: list[str] = []
    for word in shlex.split(settings["ExecStart"][0]):
        if m := re.fullmatch(r"\$\{(\w+)\}", word):
            argv.append(env.get(m.group(1), ""))
        elif m := re.fullmatch(r"\$(\w+)", word):
            argv += env.get(m.group(1), "").split()
        else:
            argv.append(word)
    return argv, env


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_units() -> None:
    paths = [os.path.join(UNIT_DIR, u) for u in UNITS]
    if shutil.which("systemd-analyze"):
        verify = _run(["systemd-analyze", "verify", *paths])
        assert verify.returncode == 0, verify.stderr
    # envrouter-serve: its ExecStart by hand, as its User=, on a free port (the operator's
    # edit of the conffile /etc/envrouter/serve.env)
    serve = unit_settings(_read(os.path.join(UNIT_DIR, "envrouter-serve.service")))
    env_file = serve["EnvironmentFile"][0].lstrip("-")
    port = _free_port()
    text = re.sub(r"--port \d+", f"--port {port}", _read(env_file))
    with open(env_file, "w") as f:
        f.write(text)
    argv, env = exec_start_argv(serve)
    assert argv[:2] == ["/usr/bin/envrouter", "serve"] and str(port) in argv, argv
    user = serve["User"][0]
    proc = subprocess.Popen(["runuser", "-u", user, "--", "env",
                             *[f"{k}={v}" for k, v in env.items()], *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        def answering() -> bool:
            assert proc.poll() is None, f"envrouter serve exited: {proc.stdout.read()}"
            up = _run(["curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{port}/healthz"])
            return up.returncode == 0

        if not wait_until(answering, 60, 0.5):
            pytest.fail("envrouter-serve's ExecStart did not answer /healthz within 60 s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # its database, created by the service's user in the StateDirectory=
    db = "/var/lib/envrouter/server/envrouter.db"
    assert os.path.exists(db) and pwd.getpwuid(os.stat(db).st_uid).pw_name == user


def check_metrics_unit(lab: Any) -> None:
    """envrouter-metrics' ExecStart inside a controller, into the node's own directory
    (node_exporter's textfile directory is not on this machine: the unit's condition)."""
    unit = unit_settings(_read(os.path.join(UNIT_DIR, "envrouter-metrics.service")))
    argv, _ = exec_start_argv(unit)
    i = argv.index("--output")
    out = os.path.join(lab.plan.node_dir("ctl1"), "envrouter.prom")
    argv[i + 1] = out
    run = lab.exec_in("ctl1", argv, check=False, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "envrouter_" in _read(out)


# ------------------------------------------------------------------------------ the test


SHELL_AGENTS = ("vip", "uplink")  # envrouter.ha.install: their one implementation is sh


def _agent_inodes() -> dict[str, int]:
    d = "/usr/lib/ocf/resource.d/envrouter"
    return {n: os.stat(os.path.join(d, n)).st_ino for n in sorted(os.listdir(d))}


class HolderWatch:
    """Where the VIPs are, sampled every 0.5 s while something runs."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.seen: list[dict[str, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from envrouter.lab.settle import holders

        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.seen.append(holders(self.lab))
            self._stop.wait(0.5)

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.timeout(1800)  # install, a lab, an upgrade over ssh, purge: ~6 min when idle
def test_install_lab_upgrade_under_traffic_purge(installed, labtools, host_before) -> None:
    from envrouter.lab.deploy import db_url
    from envrouter.lab.drill_report import analyse, verdict
    from envrouter.lab.drill_traffic import Traffic
    from envrouter.lab.nodes import Lab
    from envrouter.lab.settle import current_holder
    from envrouter.lab.sshd import client_config_path
    from envrouter.lab.waiting import wait_for

    debs = installed
    old_version = _field(debs["old"]["envrouter"], "Version")
    new_version = _field(debs["new"]["envrouter"], "Version")
    assert _installed_versions() == {p: old_version for p in PACKAGES}
    # what the packages hold: the command, agents naming the installed interpreter, man pages
    assert _must(["envrouter", "--version"]).stdout.strip() == old_version
    for name, inode in _agent_inodes().items():
        text = _read(f"/usr/lib/ocf/resource.d/envrouter/{name}")
        assert REPO not in text and inode, name
        if name in SHELL_AGENTS:  # the agent is /bin/sh: no interpreter at all
            assert text.startswith("#!/bin/sh\n") and "bin/python" not in text, name
        else:
            assert "exec /usr/lib/envrouter/bin/python -I -S " in text, name
    assert os.path.exists("/usr/share/man/man1/envrouter-upgrade.1.gz")
    check_units()

    prefix = f"erp{secrets.token_hex(2)}-"
    state_dir = tempfile.mkdtemp(prefix="envrouter-package-lab-")
    os.rmdir(state_dir)
    # two controllers (a VIP move), one compute node (the upgrade of a node on the gateway)
    up = labtools.run_cli("lab", "up", "--installed", "--controllers", "2", "--nodes", "1",
                          "--state-dir", state_dir, "--prefix", prefix, timeout=600)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        lab = Lab.load(state_dir)
        assert lab.state["envrouter"] == ["/usr/bin/envrouter"]
        assert lab.state["installed"] == old_version
        # the nodes see the package's agents (no private copy over them)
        seen = lab.exec_in("ctl1", ["cat", "/usr/lib/ocf/resource.d/envrouter/dns"]).stdout
        assert "exec /usr/lib/envrouter/bin/python " in seen
        check_metrics_unit(lab)

        holder = current_holder(lab)
        agents_before = _agent_inodes()
        directory = os.path.join(lab.plan.node_dir("up"), "upgrade-traffic")
        traffic = Traffic(lab, directory, tcp_per_node=2, udp_per_node=1)
        t_start = time.time()
        traffic.start()
        try:
            wait_for("traffic flowing", lambda: traffic.flowing(time.time() - 0.5), timeout=30,
                     interval=0.2)
            # the operator's tool on the admin host; the nodes run their installed package
            argv = [sys.executable, "-m", "envrouter.cli.main", "upgrade", lab.plan.env_name,
                    "--database-url", db_url(lab), "--runner", "ssh",
                    "--ssh-config", client_config_path(lab),
                    "--agent-root", os.path.join(state_dir, "nodes", "{node}", "root"),
                    # the operator's progress file, on the admin host (gone with lab down)
                    "--state-file", os.path.join(lab.plan.node_dir("master"),
                                                 "upgrade-state.json"),
                    "--no-stonith", "--check-timeout", "10",
                    *[a for p in ("envrouter", "envrouter-controller")
                      for a in ("--package-file", debs["new"][p])]]
            dry = lab.exec_in("master", [*argv, "--dry-run"], check=False, timeout=120,
                              env={"COLUMNS": "200"})
            assert dry.returncode == 0, dry.stderr
            for node in ("ctl1", "ctl2", "cmp1"):
                assert f"upgrade packages on {node}" in dry.stdout, dry.stdout
            assert "move cmp" not in dry.stdout, "an environment on the vrouter has no move"
            t_fault = time.time()
            with HolderWatch(lab) as watch:
                run = lab.exec_in("master", argv, check=False, timeout=900,
                                  env={"COLUMNS": "200"})
            print(run.stdout)
            assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-2000:]}"
            assert "upgrade complete" in run.stdout
            assert f"envrouter {old_version} -> {new_version}" in run.stdout
            time.sleep(2.5)  # traffic after the upgrade, measured
            holders_after = {k: v for k, v in watch.seen[-1].items()} if watch.seen else {}
            t_end = time.time()
            server, clients, pings = traffic.stop()
        finally:
            for name in ("stop", "stop-server"):
                with contextlib.suppress(OSError), open(os.path.join(directory, name), "w"):
                    pass
        assert _installed_versions() == {"envrouter": new_version,
                                         "envrouter-controller": new_version,
                                         "envrouter-server": old_version}
        agents_after = _agent_inodes()
        assert set(agents_after) == set(agents_before)
        assert all(agents_after[n] != agents_before[n] for n in agents_after), \
            "the upgrade did not replace the OCF agents"
        moved = [s for s in watch.seen if any(h != [holder] for h in s.values())]
        assert watch.seen and not moved, f"the VIPs left {holder}: {moved[:3]}"
        report = analyse("package-upgrade", holder, None, holders_after, False, t_start,
                         t_fault, t_end, None, server, clients, pings, [])
        problems = verdict(report)
        lost = [f for f in report.flows if not f.survived]
        assert not lost and not problems, f"{problems} {lost}"
        assert len(report.flows) >= 2 * (2 + 1) + 2
        # nothing left in maintenance, every resource running on both controllers
        mon = lab.exec_in("ctl1", ["crm_mon", "-1", "--output-as=xml"]).stdout
        assert 'maintenance="true"' not in mon.split("<resources>")[0].split("<nodes>")[1]
    finally:
        down = labtools.run_cli("lab", "down", "--state-dir", state_dir, "--prefix", prefix)
        assert down.returncode == 0, down.stderr
        assert labtools.lab_leftovers(prefix, state_dir) == []
        assert labtools.host_snapshot() == host_before
