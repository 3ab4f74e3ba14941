"""The web UI: one HTML shell and ES modules that call the REST API (/api/v1).

The pages hold no state and no validation of their own: every value goes to the API, and the
API's 4xx bodies are what the operator sees, next to the field they concern. The shell is the
same document for every page; the browser's module (`static/app.js`) picks the view from the
URL, so a reload or a bookmark of /ui/environments/3 works.

Only explicit paths are registered (no catch-all), so nothing here can shadow /api, /openapi.json,
/metrics or /healthz, and none of it appears in the OpenAPI schema.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

UI_PREFIX = "/ui"
STATIC_PREFIX = f"{UI_PREFIX}/static"

# The pages load only their own scripts and styles and talk only to this server.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _ui_dir() -> str:
    return str(resources.files("envrouter.ui"))


def _shell() -> str:
    return (resources.files("envrouter.ui") / "shell.html").read_text(encoding="utf-8")


class _StaticFiles(StaticFiles):
    """Static files revalidated on every load, so an upgraded server is seen at once."""

    async def get_response(self, path, scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def mount_ui(app: FastAPI) -> None:
    """Serve the pages at / and /ui/..., their static files at /ui/static/..."""
    shell = _shell()

    def page() -> HTMLResponse:
        return HTMLResponse(shell, headers=_SECURITY_HEADERS)

    for path in (
        "/",
        UI_PREFIX,
        f"{UI_PREFIX}/",
        f"{UI_PREFIX}/login",
        f"{UI_PREFIX}/environments",
        f"{UI_PREFIX}/environments/{{env_id}}",
        f"{UI_PREFIX}/environments/{{env_id}}/operations",
    ):
        app.add_api_route(
            path,
            page,
            methods=["GET"],
            response_class=HTMLResponse,
            include_in_schema=False,
            name=f"ui:{path}",
        )

    app.mount(
        STATIC_PREFIX,
        _StaticFiles(directory=f"{_ui_dir()}/static"),
        name="ui-static",
    )
