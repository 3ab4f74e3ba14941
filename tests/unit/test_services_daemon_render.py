"""A daemon's configuration is rendered on demand: the OCF monitor, every few seconds, renders
only when what the configuration depends on changed (files in a temporary directory)."""

from __future__ import annotations

from envrouter.services.process import Daemon, service_paths, source_digest


def _daemon(tmp_path, source: str, calls: list[int], text: str = "a 1\n") -> Daemon:
    def render() -> dict[str, str]:
        calls.append(1)
        return {"x.conf": text}

    paths = service_paths("vrt", "x", run_root=str(tmp_path / "run"), log_root=str(tmp_path))
    return Daemon(paths=paths, comm="x", argv=["x"], render=render, source=source)


def test_monitor_does_not_render_when_the_inputs_are_unchanged(tmp_path) -> None:
    calls: list[int] = []
    src = source_digest("doc-1", {"pid_file": "/run/x.pid"})
    _daemon(tmp_path, src, calls).prepare()
    assert calls == [1]
    assert not _daemon(tmp_path, src, calls).config_drifted()
    assert calls == [1]  # nothing rendered


def test_changed_inputs_render_and_compare(tmp_path) -> None:
    calls: list[int] = []
    _daemon(tmp_path, source_digest("doc-1"), calls).prepare()
    # new document, same text: rendered, compared, no drift
    assert not _daemon(tmp_path, source_digest("doc-2"), calls).config_drifted()
    assert len(calls) == 2
    # new document, new text: drift
    assert _daemon(tmp_path, source_digest("doc-3"), calls, text="a 2\n").config_drifted()


def test_digest_depends_on_every_part() -> None:
    assert source_digest("a", {"k": 1}) != source_digest("a", {"k": 2})
    assert source_digest("a", {"k": 1}) == source_digest("a", {"k": 1})
