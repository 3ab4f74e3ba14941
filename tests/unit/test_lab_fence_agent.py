"""The lab's fence agent (envrouter.lab.fence_agent): the fence-agents conventions — options on
stdin or argv, the actions and their exit codes — against a power switch answering on a real
unix socket in a thread (the switch's protocol, not the lab's power control)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from envrouter.lab import fence
from envrouter.lab.fence_agent import main, parse_argv, parse_stdin, wrapper_text


class PowerSwitch:
    """Two plugs; records the requests it got."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.power = {"ctl1": "on", "ctl2": "on"}
        self.requests: list[tuple[str, str | None]] = []
        self.fail_on = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                req = json.loads(data)
                action, plug = req["action"], req.get("plug")
                self.requests.append((action, plug))
                if action == "list":
                    answer = {"ok": True, "plugs": dict(self.power)}
                elif plug not in self.power:
                    answer = {"ok": False, "error": f"no lab node {plug!r}"}
                elif action == "on" and self.fail_on:
                    answer = {"ok": False, "error": "boot failed"}
                else:
                    if action in ("on", "off"):
                        self.power[plug] = action
                    elif action == "cycle":
                        self.power[plug] = "on"
                    answer = {"ok": True, "status": self.power[plug]}
                conn.sendall(json.dumps(answer).encode() + b"\n")


@pytest.fixture
def switch() -> Iterator[PowerSwitch]:
    d = tempfile.mkdtemp(prefix="fence-")
    sw = PowerSwitch(os.path.join(d, "power.sock"))
    yield sw
    sw.sock.close()
    os.unlink(sw.path)
    os.rmdir(d)


def stdin_call(monkeypatch, capsys, text: str) -> tuple[int, str]:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    rc = main([])
    return rc, capsys.readouterr().out


def test_options_from_stdin_and_argv() -> None:
    opts = parse_stdin("# Pacemaker's fencer\naction=reboot\nport=ctl2\nnodename=ctl2\n"
                       'socket="/x/power.sock"\npcmk_host_list=ctl2\n\n')
    assert opts == {"action": "reboot", "plug": "ctl2", "socket": "/x/power.sock"}
    assert parse_stdin("option=off\nplug=ctl3\n") == {"action": "off", "plug": "ctl3"}
    assert parse_argv(["-o", "status", "-n", "ctl1", "--socket", "/s"]) == {
        "action": "status", "plug": "ctl1", "socket": "/s"}
    assert parse_argv(["--action=off", "--port=ctl2", "--method", "cycle"]) == {
        "action": "off", "plug": "ctl2", "method": "cycle"}


def test_status_on_off_and_exit_codes(switch, monkeypatch, capsys) -> None:
    base = f"socket={switch.path}\nplug=ctl2\n"
    assert stdin_call(monkeypatch, capsys, base + "action=status\n") == (0, "Status: ON\n")
    rc, out = stdin_call(monkeypatch, capsys, base + "action=off\n")
    assert (rc, out.strip(), switch.power["ctl2"]) == (0, "Success: Powered OFF", "off")
    assert stdin_call(monkeypatch, capsys, base + "action=status\n") == (2, "Status: OFF\n")
    rc, out = stdin_call(monkeypatch, capsys, base + "action=off\n")
    assert (rc, out.strip()) == (0, "Success: Already OFF")
    assert main(["-o", "on", "-n", "ctl2", "--socket", switch.path]) == 0
    assert switch.power["ctl2"] == "on"


def test_reboot_onoff_and_cycle(switch, monkeypatch, capsys) -> None:
    base = f"socket={switch.path}\nplug=ctl1\naction=reboot\n"
    rc, out = stdin_call(monkeypatch, capsys, base)
    assert (rc, out.strip()) == (0, "Success: Rebooted")
    assert switch.requests[-2:] == [("off", "ctl1"), ("on", "ctl1")]
    stdin_call(monkeypatch, capsys, base + "method=cycle\n")
    assert switch.requests[-1] == ("cycle", "ctl1")
    # off worked, on did not: the node is fenced all the same (as fencing.py does)
    switch.fail_on = True
    assert stdin_call(monkeypatch, capsys, base)[0] == 0
    assert switch.power["ctl1"] == "off"


def test_list_monitor_and_failures(switch, monkeypatch, capsys) -> None:
    rc, out = stdin_call(monkeypatch, capsys, f"socket={switch.path}\naction=list\n")
    assert (rc, out) == (0, "ctl1,ctl1\nctl2,ctl2\n")
    rc, out = stdin_call(monkeypatch, capsys, f"socket={switch.path}\naction=list-status\n")
    assert out == "ctl1,ctl1,ON\nctl2,ctl2,ON\n"
    assert stdin_call(monkeypatch, capsys, f"socket={switch.path}\naction=monitor\n")[0] == 0
    # the switch refuses (unknown node) -> 1; no switch at all -> 1
    assert stdin_call(monkeypatch, capsys, f"socket={switch.path}\nplug=x\naction=off\n")[0] == 1
    assert stdin_call(monkeypatch, capsys, "socket=/nonexistent/s\naction=monitor\n")[0] == 1
    # bad arguments -> 2 (EC_BAD_ARGS), the field named
    assert main(["-o", "explode", "-n", "ctl1", "--socket", "/s"]) == 2
    assert main(["-o", "off", "--socket", "/s"]) == 2
    assert "plug" in capsys.readouterr().err
    assert main(["-o", "reboot", "-n", "ctl1", "--socket", "/s", "--method", "x"]) == 2


def test_metadata_is_the_fence_agents_shape(capsys) -> None:
    assert main(["-o", "metadata"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    assert root.tag == "resource-agent" and root.get("name") == "fence_envrouter_lab"
    params = {p.get("name"): p for p in root.iter("parameter")}
    assert {"action", "plug", "port", "socket", "method"} <= set(params)
    assert params["plug"].get("required") == "1"
    assert params["action"].find("content").get("default") == "reboot"
    actions = {a.get("name") for a in root.iter("action")}
    assert {"on", "off", "reboot", "status", "monitor", "list", "metadata"} <= actions


def test_wrapper_runs_the_module(tmp_path) -> None:
    agent = tmp_path / "fence_envrouter_lab"
    agent.write_text(wrapper_text(sys.executable))
    agent.chmod(0o755)
    out = subprocess.run([str(agent), "-o", "metadata"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and "<resource-agent" in out.stdout


def test_device_and_constraint_xml() -> None:
    dev = fence.device_xml("ctl2", "/s/power.sock")
    assert (dev.get("class"), dev.get("type"), dev.get("id")) == (
        "stonith", "fence_envrouter_lab", "fence-ctl2")
    params = {nv.get("name"): nv.get("value") for nv in dev.iter("nvpair")}
    assert params == {"socket": "/s/power.sock", "method": "cycle", "pcmk_host_list": "ctl2",
                      "pcmk_host_check": "static-list"}
    con = fence.constraint_xml("ctl2")
    assert (con.get("rsc"), con.get("node"), con.get("score")) == (
        "fence-ctl2", "ctl2", "-INFINITY")
    # not ids `envrouter ha apply` owns (it would sweep them)
    assert not dev.get("id").startswith("envrouter-")
    assert not con.get("id").startswith("envrouter-")


def wrapper_call(agent: str, text: str) -> tuple[int, str]:
    out = subprocess.run([agent], input=text, capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout


@pytest.mark.skipif(not os.path.exists("/bin/nc") and not os.path.exists("/usr/bin/nc"),
                    reason="netcat-openbsd (nc) is not installed")
def test_wrapper_runs_the_fencers_actions_without_python(switch, tmp_path, monkeypatch,
                                                         capsys) -> None:
    """The wrapper's sh path (FAST_PATH) answers the fencer's actions like the module, with
    no interpreter at all (one that does not exist): a fencing costs no Python start."""
    no_python = tmp_path / "fence_envrouter_lab"
    no_python.write_text(wrapper_text("/nonexistent/python3"))
    no_python.chmod(0o755)
    agent = str(no_python)
    base = f"socket={switch.path}\nplug=ctl2\nnodename=ctl2\npcmk_host_list=ctl2\n"
    # the same answers and exit codes as the module, step by step on the same switch
    for step in ("action=status", "action=off", "action=status", "action=off", "action=on",
                 "action=reboot", "action=reboot\nmethod=cycle", "option=off",
                 "port=ctl1\naction=status"):
        text = base + step + "\n"
        before, n = dict(switch.power), len(switch.requests)
        got = wrapper_call(agent, text), switch.requests[n:], dict(switch.power)
        switch.power, switch.requests = before, switch.requests[:n]
        want = stdin_call(monkeypatch, capsys, text), switch.requests[n:], dict(switch.power)
        assert got == want, step
    assert switch.power == {"ctl1": "on", "ctl2": "off"}
    assert wrapper_call(agent, f"socket={switch.path}\naction=monitor\n")[0] == 0
    # refused by the switch, no switch at all: 1, as the module
    assert wrapper_call(agent, f"socket={switch.path}\nplug=x\naction=off\n")[0] == 1
    assert wrapper_call(agent, "socket=/nonexistent/s\nplug=ctl1\naction=status\n")[0] == 1
    # off worked, on did not: fenced all the same
    switch.fail_on = True
    assert wrapper_call(agent, base + "action=reboot\n") == (0, "Success: Rebooted\n")
    assert switch.power["ctl2"] == "off"
    # metadata without the interpreter; what the sh path leaves to the module needs it
    assert "<resource-agent" in wrapper_call(agent, "action=metadata\n")[1]
    assert wrapper_call(agent, f"socket={switch.path}\naction=list\n")[0] != 0
    assert wrapper_call(agent, base + "action=reboot\nmethod=unknown\n")[0] != 0


def test_wrapper_leaves_other_input_to_the_module(switch, tmp_path) -> None:
    agent = tmp_path / "fence_envrouter_lab"
    agent.write_text(wrapper_text(sys.executable))
    agent.chmod(0o755)
    rc, out = wrapper_call(str(agent), f"socket={switch.path}\naction=list-status\n")
    assert (rc, out) == (0, "ctl1,ctl1,ON\nctl2,ctl2,ON\n")
    # quoted values and unknown options: the module's parser
    rc, out = wrapper_call(str(agent), f'socket="{switch.path}"\nplug=ctl1\naction=status\n'
                                       "verbose=1\n")
    assert (rc, out) == (0, "Status: ON\n")
