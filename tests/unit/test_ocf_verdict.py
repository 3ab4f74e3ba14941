"""The launcher's verdict (envrouter.ha.ocf_memo.Verdict, envrouter.ha.install.VERDICT_CHECK):
what a Python monitor records is what the generated sh reads back, and the sh answers only
while every recorded fact holds. No root needed: the "daemon" is a sleep of this test's own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envrouter.ha.install import agent_of, agent_text, verdict_check
from envrouter.ha.ocf_base import Agent, Param
from envrouter.ha.ocf_memo import INPUTS_ENV, Verdict, start_verdict, verdict_path

NO_PYTHON = 99


@pytest.fixture
def agent(tmp_path):
    """The dns agent's launcher with the interpreter replaced: 99 means "Python would run",
    and it prints the inputs' stamp it would hand to Python."""
    head, _, _ = agent_text("dns").rpartition("exec ")
    path = tmp_path / "dns"
    path.write_text(f'{head}echo "${INPUTS_ENV}"; exit {NO_PYTHON}\n')
    path.chmod(0o755)
    doc = tmp_path / "document.json"
    doc.write_text("{}")
    env = {"PATH": os.environ["PATH"], "OCF_RESKEY_document": str(doc),
           "OCF_RESKEY_run_root": str(tmp_path / "run"), "OCF_RESKEY_CRM_meta_interval": "10000"}
    return path, env, doc


def _run(path, env) -> subprocess.CompletedProcess:
    return subprocess.run([str(path), "monitor"], env=env, capture_output=True, text=True,
                          timeout=30)


def test_the_launcher_answers_from_the_verdict_while_every_fact_holds(agent, tmp_path):
    path, env, doc = agent
    first = _run(path, env)
    assert first.returncode == NO_PYTHON  # nothing recorded: Python decides
    stamp = first.stdout.strip()
    assert f"document={doc};" in stamp and f"run_root={tmp_path / 'run'};" in stamp
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = tmp_path / "daemon.pid"
        pid_file.write_text(f"{sleeper.pid}\n")
        source = tmp_path / "rendered-from"
        source.write_text("abc123\n")
        verdict = start_verdict({**env, INPUTS_ENV: stamp}, str(tmp_path / "run"), "dns")
        assert verdict is not None and verdict.path == verdict_path(str(tmp_path / "run"), "dns")
        verdict.live_pid(str(pid_file), "sleep")
        verdict.exists(str(tmp_path))
        verdict.has_line(str(source), "abc123")
        verdict.record(0)
        assert _run(path, env).returncode == 0
        assert _run(path, {**env, "OCF_RESKEY_CRM_meta_interval": "0"}).returncode == NO_PYTHON
        assert _run(path, {**env, "OCF_RESKEY_log_root": "/elsewhere"}).returncode == NO_PYTHON
        source.write_text("def456\n")  # another fact no longer holds
        assert _run(path, env).returncode == NO_PYTHON
        source.write_text("abc123\n")
        assert _run(path, env).returncode == 0
        os.utime(doc, ns=(1, 1))  # the document's identity changed: the stamp differs
        assert _run(path, env).returncode == NO_PYTHON
        verdict.stamp = _run(path, env).stdout.strip()
        verdict.record(0)
        assert _run(path, env).returncode == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _run(path, env).returncode == NO_PYTHON  # the PID is gone


def test_a_spoiled_verdict_is_removed_and_never_answers(agent, tmp_path):
    path, env, _ = agent
    stamp = _run(path, env).stdout.strip()
    verdict = Verdict(verdict_path(str(tmp_path / "run"), "dns"), stamp)
    verdict.exists(str(tmp_path))
    verdict.record(0)
    assert _run(path, env).returncode == 0
    spoiled = Verdict(verdict.path, stamp)
    spoiled.exists(str(tmp_path / "a name with blanks"))  # sh could not split it back
    assert spoiled.spoiled
    spoiled.record(0)
    assert not os.path.exists(verdict.path)
    assert _run(path, env).returncode == NO_PYTHON
    other = Verdict(verdict.path, stamp)
    other.succeeds(5, "rm", "-rf", str(tmp_path))  # only the commands the launcher allows
    assert other.spoiled
    failing = Verdict(verdict.path, stamp)
    failing.exists(str(tmp_path))
    failing.succeeds(5, "conntrackd", "-C", str(tmp_path / "absent.conf"), "-s")
    failing.record(8)
    assert _run(path, env).returncode == NO_PYTHON  # the command fails: Python decides


def test_a_verdict_is_kept_only_for_a_recurring_monitor_the_launcher_started():
    assert start_verdict({"OCF_RESKEY_CRM_meta_interval": "10000"}, "/run/x", "dns") is None
    assert start_verdict({INPUTS_ENV: "s", "OCF_RESKEY_CRM_meta_interval": "0"}, "/run/x",
                         "dns") is None
    assert start_verdict({INPUTS_ENV: "s", "OCF_RESKEY_CRM_meta_interval": "5000"}, "/run/x",
                         "dns") is not None


def test_the_launcher_refuses_a_value_it_cannot_quote():
    bad = Agent("x", "x", "x", [*agent_of("dns").params, Param("p", "p", "p", default="a b")],
                handlers={}, monitor_inputs=("document.py",))
    with pytest.raises(ValueError, match="cannot quote"):
        verdict_check(bad)


def test_python_agents_without_monitor_inputs_always_run_python():
    text = agent_text("vrouter")
    assert INPUTS_ENV not in text and text.rstrip().endswith('"$@"')
    assert sys.executable in text


def test_only_a_running_answer_is_recorded(tmp_path):
    """A failure may rest on more than the recorded facts (conntrackd not answering on its
    socket after the daemon's facts were noted): Python decides it every time."""
    from envrouter.ha.ocf_base import OCF_ERR_GENERIC, OCF_RUNNING_PROMOTED, run

    def monitor(answer):
        def handler(ctx):
            ctx.verdict = Verdict(verdict_path(str(tmp_path), "t"), "stamp")
            ctx.verdict.exists(str(tmp_path))
            return answer
        return handler

    for answer, kept in ((OCF_RUNNING_PROMOTED, True), (OCF_ERR_GENERIC, False)):
        agent = Agent("t", "t", "t", [], handlers={"monitor": monitor(answer)})
        assert run(agent, ["t", "monitor"], {}) == answer
        assert os.path.exists(verdict_path(str(tmp_path), "t")) == kept


FAKE_CONNTRACKD = """#!/bin/sh
# stands for `conntrackd -C CONF -s`: prints the file next to it
cat "$(dirname "$0")/stats.txt"
"""


def _stats(count: int) -> str:
    return (f"cache internal:\ncurrent active connections:\t{count:>12}\n"
            "connections created:\t\t           0\tfailed:\t           0\n\n"
            "traffic processed:\n                   0 Bytes                         0 Pckts\n")


def test_the_launcher_reads_the_lines_of_a_commands_output(agent, tmp_path):
    """`says`: the first lines of the last `run`'s output, tabs and runs of blanks kept, as
    the unpromoted conntrackd's answer rests on its empty internal cache; `absent`: no
    promoted marker."""
    path, env, _ = agent
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "conntrackd").write_text(FAKE_CONNTRACKD)
    (bin_dir / "conntrackd").chmod(0o755)
    (bin_dir / "stats.txt").write_text(_stats(0))
    env = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    stamp = _run(path, env).stdout.strip()
    marker = tmp_path / "promoted"
    verdict = Verdict(verdict_path(str(tmp_path / "run"), "dns"), stamp)
    verdict.absent(str(marker))
    verdict.succeeds(5, "conntrackd", "-C", str(tmp_path / "c.conf"), "-s")
    head = _stats(0).splitlines()
    verdict.says(1, head[0])
    verdict.says(2, head[1])
    assert not verdict.spoiled
    verdict.record(0)
    assert _run(path, env).returncode == 0
    (bin_dir / "stats.txt").write_text(_stats(3))  # a flow in the cache: Python flushes it
    assert _run(path, env).returncode == NO_PYTHON
    (bin_dir / "stats.txt").write_text(_stats(0).replace("\t", " ", 1))  # not to the byte
    assert _run(path, env).returncode == NO_PYTHON
    (bin_dir / "stats.txt").write_text("cache internal:\n")  # shorter than the facts
    assert _run(path, env).returncode == NO_PYTHON
    (bin_dir / "stats.txt").write_text(_stats(0))
    assert _run(path, env).returncode == 0
    marker.write_text("promoted\n")  # promoted since: Python answers 8
    assert _run(path, env).returncode == NO_PYTHON
    marker.unlink()
    assert _run(path, env).returncode == 0


def test_a_says_fact_the_launcher_could_not_read_back_spoils_the_verdict(tmp_path):
    early = Verdict(str(tmp_path / "v"), "s")
    early.says(1, "cache internal:")  # no command ran before it
    assert early.spoiled
    for text in (" leading", "trailing\t", "", "two\nlines"):
        v = Verdict(str(tmp_path / "v"), "s")
        v.succeeds(5, "conntrackd", "-s")
        v.says(1, text)
        assert v.spoiled, text


@pytest.mark.parametrize("promoted, count, facts", [
    (False, 0, ["run", "absent", "says", "says"]),
    (False, 4, None),  # flushed now: a change, not repeated
    (True, 4, ["run", "line"]),  # the promoted instance's cache is not the question
])
def test_conntrackd_records_what_its_monitor_answer_rests_on(tmp_path, promoted, count, facts):
    from envrouter.ha import ocf_conntrackd
    from envrouter.ha.ocf_base import Context
    from envrouter.ha.ocf_daemon import Instance

    if ocf_conntrackd.conntrackd.EXTERNAL_CACHE:
        pytest.skip("with an external cache the unpromoted answer does not read the cache")
    i = Instance("ns", str(tmp_path), str(tmp_path / "pid"), "conntrackd", "digest")
    ctx = Context("monitor", {}, {})
    ctx.verdict = Verdict(str(tmp_path / "v"), "stamp")
    ocf_conntrackd._verdict_facts(ctx, i, i.file(ocf_conntrackd.PROMOTED_FILE), promoted,
                                  _stats(count))
    if facts is None:
        assert ctx.verdict.spoiled
    else:
        assert not ctx.verdict.spoiled
        assert [f.split()[0] for f in ctx.verdict.facts] == facts
