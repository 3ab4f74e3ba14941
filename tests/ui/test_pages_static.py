"""The UI's own serving, without the API: routes, headers, no shadowing of the API's paths, and
the login page rendering in chromium with no script error."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from uibrowser import serve_app

from envrouter.ui.pages import mount_ui


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/ping")
    def ping() -> dict:
        return {"pong": True}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    mount_ui(app)
    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_app())


@pytest.mark.parametrize(
    "path", ["/", "/ui", "/ui/", "/ui/login", "/ui/environments", "/ui/environments/7"]
)
def test_pages_serve_the_shell(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/ui/static/app.js">' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_static_files_and_types(client: TestClient) -> None:
    js = client.get("/ui/static/app.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    css = client.get("/ui/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/ui/static/nope.js").status_code == 404


def test_ui_does_not_shadow_api_or_schema(client: TestClient) -> None:
    assert client.get("/api/v1/ping").json() == {"pong": True}
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/api/v1/not-there").status_code == 404
    assert client.get("/ui/unknown-page").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_every_module_is_served(client: TestClient) -> None:
    """Each relative import of every module resolves to a served file."""
    seen: set[str] = set()
    todo = ["/ui/static/app.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        base = path.rsplit("/", 1)[0]
        for rel in re.findall(r'from "(\.{1,2}/[^"]+)"', response.text):
            parts = base.split("/")
            for piece in rel.split("/"):
                if piece == "..":
                    parts.pop()
                elif piece != ".":
                    parts.append(piece)
            todo.append("/".join(parts))
    assert len(seen) >= 8


def test_login_page_renders_without_script_errors(page) -> None:
    with serve_app(_app()) as base:
        page.goto(f"{base}/ui/environments")
        # No token: the environments page sends the operator to the login.
        page.wait_for_url(f"{base}/ui/login")
        token = page.get_by_label("API token")
        token.wait_for()
        assert token.evaluate("el => el === document.activeElement")
        assert page.title().startswith("Log in")
        unlabelled = page.evaluate(
            "() => [...document.querySelectorAll('input, select, textarea')]"
            ".filter(el => el.labels.length === 0).map(el => el.outerHTML)"
        )
        assert unlabelled == []
        assert page.js_errors == []


def test_api_problems_map_to_fields(page) -> None:
    """The pure helpers, run in the browser: field names from the API's error bodies."""
    with serve_app(_app()) as base:
        page.goto(f"{base}/ui/login")
        page.get_by_label("API token").wait_for()
        result = page.evaluate(
            """async () => {
              const p = await import('/ui/static/problems.js');
              const a = await import('/ui/static/api.js');
              const s = await import('/ui/static/views/settings.js');
              return {
                fields: ['dns_list', 'dns_list.1', 'dns_list[2]', 'body.ntp_list.0', '']
                  .map(p.parseField),
                split: s.splitList(' 8.8.8.8, 1.1.1.1\\n9.9.9.9 ,, '),
                ours: a.problemsFromBody(422, {detail: [
                  {object: 'vrouter settings', field: 'dns_list.1', reason: 'bad'}]}),
                fastapi: a.problemsFromBody(422, {detail: [
                  {loc: ['body', 'dns_list', 0], msg: 'not a string', type: 'x'}]}),
                text: a.problemsFromBody(401, {detail: 'token expired'}),
                empty: a.problemsFromBody(500, null),
              };
            }"""
        )
    assert result["fields"] == [
        {"root": "dns_list", "index": None},
        {"root": "dns_list", "index": 1},
        {"root": "dns_list", "index": 2},
        {"root": "ntp_list", "index": 0},
        {"root": "", "index": None},
    ]
    assert result["split"] == ["8.8.8.8", "1.1.1.1", "9.9.9.9"]
    assert result["ours"] == [
        {"object": "vrouter settings", "field": "dns_list.1", "reason": "bad"}
    ]
    assert result["fastapi"] == [
        {"object": "request", "field": "dns_list.0", "reason": "not a string"}
    ]
    assert result["text"] == [{"object": "", "field": "", "reason": "token expired"}]
    assert result["empty"][0]["reason"] == "the server answered HTTP 500"


def test_cluster_state_is_shown_as_given_and_unknown_is_never_filled_in(page) -> None:
    with serve_app(_app()) as base:
        page.goto(f"{base}/ui/login")
        page.get_by_label("API token").wait_for()
        result = page.evaluate(
            """async () => {
              const {renderCluster} = await import('/ui/static/views/environment.js');
              const show = (result) => {
                const section = document.createElement('section');
                renderCluster(section, result, () => {});
                return {
                  dl: [...section.querySelectorAll('dt')].map(
                    (dt) => [dt.textContent, dt.nextElementSibling.textContent]),
                  text: section.textContent,
                };
              };
              return {
                live: show({ok: true, data: {source: 'crm_mon', quorate: false,
                  vip_holder: 'ctl2', nodes: [{name: 'ctl1', online: false}]}}),
                // A server that says "unknown" but sends values: the values are not shown.
                unknown: show({ok: true, data: {source: 'unknown', quorate: true,
                  vip_holder: 'ctl1', nodes: [], error: 'crm_mon: not found'}}),
                failed: show({ok: false, error: new Error('HTTP 502')}),
              };
            }"""
        )
    assert result["live"]["dl"] == [
        ["Source", "crm_mon"], ["Quorate", "no"], ["VIP holder", "ctl2"]
    ]
    assert "ctl1" in result["live"]["text"]
    assert result["unknown"]["dl"] == [
        ["Source", "unknown"], ["Quorate", "unknown"], ["VIP holder", "unknown"]
    ]
    assert "crm_mon: not found" in result["unknown"]["text"]
    assert "ctl1" not in result["unknown"]["text"]
    assert result["failed"]["dl"][1:] == [["Quorate", "unknown"], ["VIP holder", "unknown"]]
    assert "HTTP 502" in result["failed"]["text"]
