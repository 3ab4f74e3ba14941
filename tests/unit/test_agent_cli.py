"""The agent CLI's document sources: --server fetch (a loopback HTTP stub), errors."""

from __future__ import annotations

import http.server
import threading

import pytest

from agent_documents import compute_document
from envrouter.cli.agent import _document
from envrouter.errors import InfraError, ValidationError


@pytest.fixture
def server():
    body = compute_document().model_dump_json().encode()
    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append((self.path, self.headers.get("Authorization")))
            if self.headers.get("Authorization") != "Bearer s3cret":
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b'{"detail": "unknown token"}')
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_from_server_with_token_file(server, tmp_path):
    url, seen = server
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    doc = _document(None, url, "cmp1", token, tmp_path)
    assert doc.node.hostname == "cmp1"
    assert seen == [("/api/v1/nodes/by-hostname/cmp1/document", "Bearer s3cret")]


def test_fetch_errors_are_clear(server, tmp_path, monkeypatch):
    url, _ = server
    monkeypatch.setenv("ENVROUTER_TOKEN", "wrong")
    with pytest.raises(InfraError, match="HTTP 401"):
        _document(None, url, "cmp1", None, tmp_path)
    monkeypatch.delenv("ENVROUTER_TOKEN")
    with pytest.raises(ValidationError, match="token"):
        _document(None, url, "cmp1", None, tmp_path)
    with pytest.raises(ValidationError, match="--node"):
        _document(None, url, None, None, tmp_path)
    with pytest.raises(ValidationError, match="--document"):
        _document(None, None, None, None, tmp_path)
    assert _document(None, None, None, None, tmp_path, fallback=True) is None


def test_the_agent_loads_only_the_parts_of_pyroute2_it_uses():
    """`lean_pyroute2` gives the names envrouter.agent.netlink imports without the package's
    __init__ (which loads every part of the library); any other name still works."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from envrouter.cli.agent import lean_pyroute2\n"
        "lean_pyroute2()\n"
        "from pyroute2 import IPRoute, NetlinkError, netns\n"
        "from pyroute2.iproute.linux import IPRoute as linux\n"
        "assert IPRoute is linux and callable(netns.create), (IPRoute, netns)\n"
        "lean = {m for m in sys.modules if m.startswith('pyroute2')}\n"
        "assert 'pyroute2.ndb.main' not in lean and 'pyroute2.ipdb' not in lean, lean\n"
        "from pyroute2 import NDB, NetNS\n"  # not preloaded: the whole package, once
        "assert 'pyroute2.ndb.main' in sys.modules\n"
        "import pyroute2\n"
        "assert pyroute2.IPRoute is linux and pyroute2.NetNS is NetNS\n"
        "print(len(lean), len([m for m in sys.modules if m.startswith('pyroute2')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lean, whole = map(int, out.stdout.split())
    assert lean < whole


def test_the_agent_builds_the_document_without_pydantic_plugin_loader():
    """`lean_pydantic_plugins`: the document is parsed and checked as before (a bad one is
    still refused) without pydantic's plugin loader and the importlib.metadata it imports;
    a PYDANTIC_DISABLE_PLUGINS that names only some plugins keeps the real loader."""
    import os
    import subprocess
    import sys

    doc = compute_document().model_dump_json()
    code = (
        "import sys\n"
        "from envrouter.cli.agent import lean_pydantic_plugins\n"
        "lean_pydantic_plugins()\n"
        "from envrouter.document import parse_document\n"
        "from envrouter.errors import ValidationError\n"
        "doc = parse_document(sys.stdin.read().encode())\n"
        "try:\n"
        "    parse_document(b'{\"version\": 1}')\n"
        "except ValidationError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('a bad document was accepted')\n"
        "print(doc.node.hostname, 'importlib.metadata' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], input=doc, capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [compute_document().node.hostname, "False"]
    out = subprocess.run([sys.executable, "-c", code], input=doc, capture_output=True,
                         text=True, timeout=60, env={**env, "PYDANTIC_DISABLE_PLUGINS": "x"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "True"
