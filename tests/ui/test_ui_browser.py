"""The UI in Debian's chromium against a real `envrouter serve` on a fresh SQLite database.

Every environment is created through the REST API by the test that uses it (unique names), so
the tests do not depend on each other's changes. What the page shows is checked against what the
API then holds, and the deployment documents are read back through the API.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from serving import serve_process, wait_until

REPO = Path(__file__).resolve().parents[2]
# The docs' picture is refreshed only on request (ENVROUTER_UPDATE_DOCS=1): a test run never
# rewrites the repository.
DOCS_SCREENSHOT = REPO / "docs" / "ui-settings.png"
# The installed `envrouter` script of this interpreter's environment (the venv), else the module.
_SCRIPT = Path(sys.executable).with_name("envrouter")
ENVROUTER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "envrouter.cli.main"]


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENVROUTER_DATABASE_URL": db_url}
    return subprocess.run(
        [*ENVROUTER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _token_from_output(text: str) -> str:
    # The token is printed once; take the longest whitespace-free word that looks like one.
    words = re.findall(r"[A-Za-z0-9_\-\.~+/=]{20,}", text)
    assert words, f"no token in the output of envrouter token create: {text!r}"
    return max(words, key=len)


@dataclass
class Server:
    base: str
    db_url: str
    admin_token: str
    ro_token: str

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.request(method, f"{self.base}/api/v1{path}", headers=headers, timeout=30,
                             **kwargs)

    def ok(self, method: str, path: str, **kwargs):
        response = self.api(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def create_token(self, name: str, *extra: str) -> str:
        done = _cli(self.db_url, "token", "create", "--name", name, *extra)
        assert done.returncode == 0, done.stderr
        return _token_from_output(done.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ui-server")
    db_url = f"sqlite:///{tmp}/envrouter.db"
    with serve_process(ENVROUTER, tmp, db_url) as base:
        srv = Server(base, db_url, "", "")
        srv.admin_token = srv.create_token("ui-admin")
        srv.ro_token = srv.create_token("ui-viewer", "--read-only")
        yield srv


@dataclass
class LabEnv:
    id: int
    name: str
    controllers: list[dict]
    others: list[dict]


@pytest.fixture
def make_env(server: Server):
    """Create an environment through the API: four networks, controllers and a compute node,
    VIPs reserved; `controllers=0` gives one with no controller (and no VIPs)."""

    def make(controllers: int = 2, computes: int = 1, reserve: bool = True) -> LabEnv:
        sfx = secrets.token_hex(3)
        env = server.ok("POST", "/environments", json={"name": f"ui-{sfx}", "ha": True})
        env_id = env["id"]
        nets = [
            ("admin", "admin", "10.20.0.0/24", "10.20.0.1", ("10.20.0.10", "10.20.0.200")),
            ("management", "management", "192.168.0.0/24", None, ("192.168.0.10", "192.168.0.200")),
            ("public", "public", "172.16.0.0/24", "172.16.0.1", ("172.16.0.10", "172.16.0.200")),
            ("storage", "storage", "192.168.1.0/24", None, ("192.168.1.10", "192.168.1.200")),
        ]
        for name, role, cidr, gateway, (start, end) in nets:
            body = {"name": name, "role": role, "cidr": cidr,
                    "ranges": [{"start": start, "end": end}]}
            if gateway:
                body["gateway"] = gateway
            server.ok("POST", f"/environments/{env_id}/networks", json=body)
        ctls = [
            server.ok("POST", f"/environments/{env_id}/nodes",
                      json={"hostname": f"ctl{i}-{sfx}", "roles": ["controller"],
                            "status": "ready"})
            for i in range(1, controllers + 1)
        ]
        cmps = [
            server.ok("POST", f"/environments/{env_id}/nodes",
                      json={"hostname": f"cmp{i}-{sfx}", "roles": ["compute"], "status": "ready"})
            for i in range(1, computes + 1)
        ]
        if reserve:
            server.ok("POST", f"/environments/{env_id}/vrouter/reserve-vips")
        return LabEnv(env_id, env["name"], ctls, cmps)

    return make


def login(page: Page, server: Server, token: str | None = None) -> None:
    page.goto(f"{server.base}/ui/login")
    page.get_by_label("API token").fill(token or server.admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Environments", exact=True)).to_be_visible()


def settled(page: Page) -> None:
    """The page has finished rendering (and has moved the focus where it wants it)."""
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")


def open_env(page: Page, server: Server, env: LabEnv) -> None:
    page.goto(f"{server.base}/ui/environments/{env.id}")
    expect(page.get_by_role("heading", name=f"Environment {env.name}")).to_be_visible()
    expect(page.locator("#settings-form")).to_be_visible()
    settled(page)


def unlabelled_inputs(page: Page) -> list[str]:
    return page.evaluate(
        "() => [...document.querySelectorAll('input, select, textarea')]"
        ".filter(el => el.labels.length === 0 || !el.labels[0].textContent.trim())"
        ".map(el => el.outerHTML)"
    )


def vip_row(page: Page, name: str):
    return page.locator(f'#vips tr[data-vip="{name}"]')


def test_login_shows_the_environment(page: Page, server: Server, make_env) -> None:
    env = make_env()
    login(page, server)
    page.get_by_role("link", name=env.name).click()
    expect(page.get_by_role("heading", name=f"Environment {env.name}")).to_be_visible()
    for section in ("#cluster", "#vips", "#settings-form", "#networks", "#nodes"):
        expect(page.locator(section)).to_be_visible()
    networks = page.locator("#networks tbody tr")
    expect(networks).to_have_count(4)
    expect(page.locator("#networks")).to_contain_text("br-mgmt")
    expect(page.locator("#nodes")).to_contain_text(env.controllers[0]["hostname"])
    expect(page.locator("#nodes")).to_contain_text("controller")
    vips = {v["name"]: v for v in server.ok("GET", f"/environments/{env.id}/vips")}
    assert set(vips) == {"vrouter", "vrouter_pub"}
    for name, vip in vips.items():
        row = vip_row(page, name)
        expect(row).to_contain_text(vip["address"])
        expect(row).to_contain_text(vip["network"])
        expect(row).to_contain_text(vip["namespace"])
        expect(row).to_contain_text("automatic")
    # The live state is what the server says; without a reachable cluster, "unknown".
    cluster = server.ok("GET", f"/environments/{env.id}/cluster")
    if cluster["source"] == "unknown":
        expect(page.locator("#cluster dd").nth(1)).to_have_text("unknown")
        expect(page.locator("#cluster dd").nth(2)).to_have_text("unknown")
    assert unlabelled_inputs(page) == []
    assert page.js_errors == []


def test_dns_change_is_saved_and_reaches_the_documents(
    page: Page, server: Server, make_env, tmp_path: Path
) -> None:
    env = make_env()
    login(page, server)
    open_env(page, server, env)
    page.get_by_label("Enabled").check()
    page.get_by_label("Upstream DNS servers").fill("192.0.2.53, 198.51.100.53")
    page.get_by_label("Upstream NTP servers").fill("pool.ntp.example.org")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-form .form-status")).to_have_text("Saved.")
    screenshot = tmp_path / "ui-settings.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("ENVROUTER_UPDATE_DOCS") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)

    settings = server.ok("GET", f"/environments/{env.id}/vrouter")
    assert settings["dns_list"] == ["192.0.2.53", "198.51.100.53"]
    assert settings["enabled"] is True
    ctl = env.controllers[0]
    doc = server.ok("GET", f"/environments/{env.id}/nodes/{ctl['id']}/document")
    assert doc["host"]["dns_servers"] == ["192.0.2.53", "198.51.100.53"]
    assert doc["vrouter"]["upstream_dns"] == ["192.0.2.53", "198.51.100.53"]
    # A reload shows what the server holds.
    page.reload()
    expect(page.get_by_label("Upstream DNS servers")).to_have_value("192.0.2.53, 198.51.100.53")

    # The page shows the same document.
    page.get_by_role("button", name=f"Document of {ctl['hostname']}").click()
    expect(page.locator("#document pre")).to_contain_text('"upstream_dns": [')
    expect(page.locator("#document pre")).to_contain_text("198.51.100.53")
    assert page.js_errors == []


def test_bad_dns_value_shows_the_error_next_to_the_field(
    page: Page, server: Server, make_env
) -> None:
    env = make_env()
    before = server.ok("GET", f"/environments/{env.id}/vrouter")["dns_list"]
    login(page, server)
    open_env(page, server, env)
    dns = page.get_by_label("Upstream DNS servers")
    dns.fill("192.0.2.53, 192.0.2.300")
    dns.press("Enter")
    error = page.locator("#vr-dns-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("192.0.2.300")
    expect(dns).to_have_attribute("aria-invalid", "true")
    expect(dns).to_be_focused()
    # The error is tied to the field for assistive technology too.
    assert "vr-dns-error" in (dns.get_attribute("aria-describedby") or "")
    # Nothing else is marked, and nothing was saved.
    expect(page.locator("#settings-form [aria-invalid]")).to_have_count(1)
    assert server.ok("GET", f"/environments/{env.id}/vrouter")["dns_list"] == before
    assert page.js_errors == []


def test_vip_outside_its_network_shows_the_error_next_to_that_vip(
    page: Page, server: Server, make_env
) -> None:
    env = make_env()
    login(page, server)
    open_env(page, server, env)
    field = page.get_by_label("User-defined address for vrouter_pub")
    field.fill("10.99.0.5")
    vip_row(page, "vrouter_pub").get_by_role("button", name="Set address").click()
    error = page.locator("#vip-vrouter_pub-address-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#vip-vrouter-address-error")).to_be_hidden()
    vips = {v["name"]: v for v in server.ok("GET", f"/environments/{env.id}/vips")}
    assert vips["vrouter_pub"]["user_defined"] is False
    assert vips["vrouter_pub"]["address"] != "10.99.0.5"
    assert page.js_errors == []


def test_user_defined_vip_and_back_to_automatic(page: Page, server: Server, make_env) -> None:
    env = make_env()
    login(page, server)
    open_env(page, server, env)
    row = vip_row(page, "vrouter")
    page.get_by_label("User-defined address for vrouter", exact=True).fill("192.168.0.250")
    page.get_by_label("User-defined address for vrouter", exact=True).press("Enter")
    expect(row).to_contain_text("user-defined")
    expect(row.locator("td.address")).to_have_text("192.168.0.250")
    vip = {v["name"]: v for v in server.ok("GET", f"/environments/{env.id}/vips")}["vrouter"]
    assert vip == {**vip, "address": "192.168.0.250", "user_defined": True}

    row.get_by_role("button", name="Back to automatic").click()
    expect(row.locator(".badge")).to_have_text("automatic")
    expect(row.locator(".form-status")).to_contain_text("automatic again")
    vip = {v["name"]: v for v in server.ok("GET", f"/environments/{env.id}/vips")}["vrouter"]
    assert vip["user_defined"] is False
    expect(row.locator("td.address")).to_have_text(vip["address"])
    assert page.js_errors == []


def test_wrong_token_gives_a_clear_message(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/ui/login")
    page.get_by_label("API token").fill("not-a-token-" + secrets.token_hex(8))
    page.get_by_role("button", name="Log in").click()
    error = page.locator("#token-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("wrong or has expired")
    expect(page).to_have_url(f"{server.base}/ui/login")


def test_token_revoked_during_the_session_returns_to_the_login(
    page: Page, server: Server, make_env
) -> None:
    env = make_env(controllers=1, computes=0)
    name = f"ui-short-{secrets.token_hex(3)}"
    token = server.create_token(name)
    login(page, server, token)
    open_env(page, server, env)
    done = _cli(server.db_url, "token", "revoke", name)
    assert done.returncode == 0, done.stderr
    # The server caches a verified token for a few seconds: refresh until it notices.
    login_url = f"{server.base}/ui/login"

    def back_at_login() -> bool:
        if page.url != login_url:
            page.locator("#cluster").get_by_role("button", name="Refresh").click()
            page.wait_for_timeout(250)
        return page.url == login_url

    wait_until(back_at_login, "the page to go back to the login", timeout=30)
    expect(page.locator(".flash")).to_contain_text("wrong or has expired")
    # The token is gone from the tab: a protected page goes back to the login.
    page.goto(f"{server.base}/ui/environments")
    expect(page).to_have_url(f"{server.base}/ui/login")


def test_keyboard_only_flow(page: Page, server: Server, make_env) -> None:
    env = make_env()
    page.goto(f"{server.base}/ui/login")
    # The token input has the focus on arrival; Enter submits.
    page.keyboard.type(server.admin_token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Environments", exact=True)).to_be_visible()
    settled(page)

    def tab_to(predicate_js: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            focused = page.evaluate(
                "() => { const el = document.activeElement; const s = getComputedStyle(el);"
                " return {match: (" + predicate_js + ")(el), tag: el.tagName,"
                " outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"
            )
            if focused["tag"] != "BODY":
                # Focus is visible on every stop.
                assert focused["outline"] != "none" and focused["width"] >= 2, focused
            if focused["match"]:
                return
        raise AssertionError(f"Tab never reached {predicate_js}")

    tab_to(f"el => el.tagName === 'A' && el.textContent === {env.name!r}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Environment {env.name}")).to_be_visible()
    settled(page)
    tab_to("el => el.id === 'vr-dns'", limit=120)
    page.keyboard.press("Control+A")
    page.keyboard.type("203.0.113.7")
    page.keyboard.press("Enter")
    expect(page.locator("#settings-form .form-status")).to_have_text("Saved.")
    assert server.ok("GET", f"/environments/{env.id}/vrouter")["dns_list"] == ["203.0.113.7"]
    assert page.js_errors == []


def test_environment_without_controllers_or_vips_renders(
    page: Page, server: Server, make_env
) -> None:
    env = make_env(controllers=0, computes=1, reserve=False)
    login(page, server)
    open_env(page, server, env)
    expect(page.locator("#no-controllers")).to_be_visible()
    expect(page.locator("#vips")).to_contain_text("No VIPs reserved yet")
    expect(page.locator("#nodes")).to_contain_text(env.others[0]["hostname"])
    expect(page.get_by_label("Upstream DNS servers")).to_be_enabled()
    assert unlabelled_inputs(page) == []
    assert page.js_errors == []


def test_read_only_token_sees_the_form_disabled(page: Page, server: Server, make_env) -> None:
    """The login asks GET /token, so a read-only token sees the forms disabled up front, and
    nothing it could type is ever sent."""
    env = make_env()
    before = server.ok("GET", f"/environments/{env.id}/vrouter")
    login(page, server, server.ro_token)
    open_env(page, server, env)
    expect(page.locator("#settings-form .read-only-note")).to_be_visible()
    expect(page.get_by_label("Upstream DNS servers")).to_be_disabled()
    expect(page.get_by_label("User-defined address for vrouter_pub")).to_be_disabled()
    expect(page.locator("#token-kind")).to_have_text("read-only token")
    assert server.ok("GET", f"/environments/{env.id}/vrouter") == before
    page.reload()
    expect(page.locator("#settings-form .read-only-note")).to_be_visible()
    expect(page.get_by_label("Upstream DNS servers")).to_be_disabled()
    expect(page.get_by_label("User-defined address for vrouter", exact=True)).to_be_disabled()
    assert page.js_errors == []


def test_the_example_environment_renders(page: Page, server: Server) -> None:
    """examples/environment.yaml, imported with the CLI, shows as the YAML says."""
    import yaml

    example = REPO / "examples" / "environment.yaml"
    spec = yaml.safe_load(example.read_text())
    done = _cli(server.db_url, "env", "import", str(example))
    assert done.returncode == 0, done.stderr
    env = next(e for e in server.ok("GET", "/environments") if e["name"] == spec["name"])
    login(page, server)
    page.get_by_role("link", name=spec["name"], exact=True).click()
    expect(page.get_by_role("heading", name=f"Environment {spec['name']}")).to_be_visible()
    expect(page.locator("#networks tbody tr")).to_have_count(len(spec["networks"]))
    expect(page.locator("#nodes tbody tr")).to_have_count(len(spec["nodes"]))
    vrouter = spec.get("vrouter", {})
    if vrouter.get("dns_list"):
        expect(page.get_by_label("Upstream DNS servers")).to_have_value(
            ", ".join(vrouter["dns_list"])
        )
    vips = server.ok("GET", f"/environments/{env['id']}/vips")
    expect(page.locator("#vips tbody tr[data-vip]")).to_have_count(len(vips))
    assert unlabelled_inputs(page) == []
    assert page.js_errors == []


def test_page_opened_with_a_revoked_token_returns_to_the_login_once(
    page: Page, server: Server, make_env
) -> None:
    """Every request of the environment page is refused at once: one clear message, one step
    back in the history."""
    env = make_env(controllers=1, computes=0)
    login(page, server)
    settled(page)
    page.evaluate("() => sessionStorage.setItem('envrouter.token', 'revoked-or-made-up')")
    entries = page.evaluate("() => history.length")
    page.goto(f"{server.base}/ui/environments/{env.id}")
    expect(page).to_have_url(f"{server.base}/ui/login")
    expect(page.locator(".flash")).to_contain_text("wrong or has expired")
    expect(page.locator(".flash")).to_have_count(1)
    settled(page)
    # The environment page, then the login: not one login per refused request.
    assert page.evaluate("() => history.length") == entries + 2
    assert page.js_errors == []


def test_dual_stack_environment_shows_ipv6_and_turns_it_on(
    page: Page, server: Server
) -> None:
    """examples/environment-dual-stack.yaml: the networks' IPv6 prefixes, the nodes' IPv6
    addresses and the four VIPs show; ticking IPv6 saves it (the networks carry IPv6)."""
    example = REPO / "examples" / "environment-dual-stack.yaml"
    done = _cli(server.db_url, "env", "import", str(example))
    assert done.returncode == 0, done.stderr
    env = next(e for e in server.ok("GET", "/environments") if e["name"] == "dual")
    nodes = {n["hostname"]: n for n in server.ok("GET", f"/environments/{env['id']}/nodes")}
    login(page, server)
    page.get_by_role("link", name="dual", exact=True).click()
    expect(page.get_by_role("heading", name="Environment dual")).to_be_visible()
    settled(page)
    expect(page.locator("#networks")).to_contain_text("fd00:20::/64")
    expect(page.locator("#networks")).to_contain_text("gateway 2001:db8:20::1")
    expect(page.locator("#nodes")).to_contain_text(
        f"management: {nodes['dual-ctl1']['addresses6']['management']}"
    )
    for name in ("vrouter", "vrouter_pub", "vrouter6", "vrouter_pub6"):
        expect(vip_row(page, name)).to_be_visible()
    expect(page.locator("#vips .reserve-form")).to_have_count(0)  # nothing left to reserve
    expect(vip_row(page, "vrouter6")).to_contain_text("user-defined")
    box = page.get_by_label("IPv6: serve the nodes over IPv6 too")
    expect(box).not_to_be_checked()
    box.check()
    page.locator("#settings-save").click()
    expect(page.locator("#settings-form")).to_contain_text("Saved.")
    expect(box).to_be_checked()
    assert server.ok("GET", f"/environments/{env['id']}/vrouter")["ipv6"] is True
    assert unlabelled_inputs(page) == []
    assert page.js_errors == []
