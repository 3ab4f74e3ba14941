"""Error bodies: {"detail": [{"object", "field", "reason"}]} for every 4xx on bad input."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from envrouter.errors import ConflictError, NotFoundError, ValidationError


def _body(items: list[dict[str, str]]) -> dict:
    return {"detail": items}


def _request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    items = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "request"
        field = ".".join(loc[1:]) or where
        items.append({"object": f"request {where}", "field": field, "reason": str(err.get("msg"))})
    return JSONResponse(_body(items), status_code=422)


def _validation(_request: Request, exc: ValidationError) -> JSONResponse:
    return JSONResponse(_body([exc.as_dict()]), status_code=422)


def _conflict(_request: Request, exc: ConflictError) -> JSONResponse:
    return JSONResponse(_body([exc.as_dict()]), status_code=409)


def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
    item = {"object": f"{exc.kind} {exc.key!r}", "field": "id", "reason": "not found"}
    return JSONResponse(_body([item]), status_code=404)


def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
    item = {"object": "database", "field": "(constraint)", "reason": str(exc.orig)}
    return JSONResponse(_body([item]), status_code=409)


RETRY_AFTER_SECONDS = 2


def _unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
    """The database could not serve the request in time (SQLite's busy wait or PostgreSQL's
    lock_timeout ran out, or it is unreachable): 503, try again later. Never a 500."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    item = {
        "object": "database",
        "field": "(availability)",
        "reason": f"busy or unreachable: {reason}",
    }
    return JSONResponse(
        _body([item]), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    """A path that matches no route gets the same 404 body as an object not found; the
    token errors (401, 403) keep their plain {"detail": "text"}."""
    if exc.status_code == 404 and exc.detail == "Not Found":
        item = {"object": f"path {request.url.path!r}", "field": "(url)", "reason": "not found"}
        return JSONResponse(_body([item]), status_code=404)
    return await http_exception_handler(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ConflictError, _conflict)  # type: ignore[arg-type]
    app.add_exception_handler(NotFoundError, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _integrity)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _unavailable)  # type: ignore[arg-type]
