"""The lab's state file shared by several processes (a drill, the power switch): a living
anchor recorded by another process is never overwritten by a stale one (envrouter.lab.nodes)."""

from __future__ import annotations

import os
import stat
import subprocess

from envrouter.lab.nodes import Lab, _read_cmdline
from envrouter.lab.topology import plan_lab


def _record(proc: subprocess.Popen) -> dict:
    cmd = ""
    while not cmd:
        cmd = _read_cmdline(proc.pid) or ""
    return {"pid": proc.pid, "cmdline": cmd}


def test_a_living_anchor_of_another_process_wins(tmp_path) -> None:
    plan = plan_lab(1, 0, prefix="ert-", state_dir=str(tmp_path / "s"))
    old = subprocess.Popen(["sleep", "60"])
    new = subprocess.Popen(["sleep", "61"])
    try:
        drill = Lab(plan)  # a drill: knows the anchor it loaded
        drill.state["anchors"]["ctl1"] = _record(old)
        drill.save()
        switch = Lab.load(plan.state_dir)  # the power switch: reboots ctl1
        old.kill()
        old.wait()
        switch.state["anchors"]["ctl1"] = _record(new)
        switch.save()
        # the drill still holds the dead record: it finds the living one, and saving its
        # stale state does not drop it
        assert drill.node_running("ctl1") and drill.anchor_pid("ctl1") == new.pid
        drill.state["anchors"]["ctl1"] = {"pid": old.pid, "cmdline": "sleep 60"}
        drill.state["deployment"] = {"x": 1}
        drill.save()
        on_disk = Lab.load(plan.state_dir)
        assert on_disk.state["anchors"]["ctl1"]["pid"] == new.pid
        assert on_disk.state["deployment"] == {"x": 1}
        # and a refresh takes the other process's writes
        switch.refresh()
        assert switch.state["deployment"] == {"x": 1}
        # powered off for real: nobody alive, the record goes
        new.kill()
        new.wait()
        assert not drill.node_running("ctl1")
    finally:
        for p in (old, new):
            p.kill()
            p.wait()


def test_the_state_file_is_private_and_written_whole(tmp_path) -> None:
    plan = plan_lab(1, 0, prefix="ert-", state_dir=str(tmp_path / "s"))
    lab = Lab(plan)
    lab.state["deployment"] = {"control_plane": {"token": "secret"}}
    lab.save()
    lab.save()  # over the first: replaced, never appended to or left half-written
    assert stat.S_IMODE(os.stat(plan.state_file).st_mode) == 0o600  # it holds the admin token
    assert sorted(os.listdir(plan.state_dir)) == ["state.json", "state.json.lock"]  # no temp
    assert Lab.load(plan.state_dir).state["deployment"] == {"control_plane": {"token": "secret"}}
