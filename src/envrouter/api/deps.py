"""Request dependencies: database sessions and token auth."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Path, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from envrouter.db.engine import Database
from envrouter.model.tokens import TokenInfo, hash_token, lookup_token

# Ids are database integers: anything larger is refused before it reaches the driver.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]

_CACHE_SECONDS = 5.0


class TokenCache:
    """Verified tokens for a few seconds, so that GET document does not pay a query for the
    token each time. A revoked token stops working within _CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, TokenInfo | None]] = {}

    def get(self, db: Database, secret: str) -> TokenInfo | None:
        key = hash_token(secret)
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit and hit[0] > now:
            return hit[1]
        with db.reading() as session:
            info = lookup_token(session, secret)
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            self._items[key] = (now + _CACHE_SECONDS, info)
        return info

    def peek(self, secret: str) -> tuple[bool, TokenInfo | None]:
        """(cached, info) without a query: info is None for an unknown token; not cached when
        never looked up or the entry is older than the cache window."""
        hit = self._items.get(hash_token(secret))
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def get_db(request: Request) -> Database:
    return request.app.state.db


def _authenticate(request: Request) -> TokenInfo:
    header = request.headers.get("authorization")
    if not header:
        raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HTTPException(401, "malformed Authorization header: expected 'Bearer <token>'")
    info = request.app.state.tokens.get(request.app.state.db, secret.strip())
    if info is None:
        raise HTTPException(401, "unknown token")
    if info.expired:
        raise HTTPException(401, f"token {info.name!r} expired")
    return info


# Declares the scheme in the OpenAPI; _authenticate does the checking (and the 401 bodies).
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="an API token (envrouter token create), sent as 'Authorization: Bearer ert_...'",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
SECURITY = [{"token": []}]  # for routes that authenticate by hand (the document fast path)


def reader(request: Request, _credentials: Credentials = None) -> TokenInfo:
    return _authenticate(request)


def admin(request: Request, _credentials: Credentials = None) -> TokenInfo:
    info = _authenticate(request)
    if info.read_only:
        raise HTTPException(403, f"token {info.name!r} is read-only: writes need an admin token")
    return info


def read_session(request: Request, _auth: TokenInfo = Depends(reader)) -> Iterator[Session]:
    with request.app.state.db.read_session() as session:
        try:
            yield session
        finally:
            session.rollback()


def writer(request: Request, _auth: TokenInfo = Depends(admin)) -> Database:
    """The database, for a route that writes: it opens its write transaction itself
    (`with db.writing() as session:`), so that the transaction -- and on SQLite the write lock
    -- ends in the route's own thread, where the write ends. A yield dependency would end it
    in a teardown that needs another worker thread; with every worker waiting for the lock,
    that teardown could not run (issue #19: 500 'database is locked' under 45 writers)."""
    return request.app.state.db


ReadDB = Annotated[Session, Depends(read_session)]
Writer = Annotated[Database, Depends(writer)]

Row = TypeVar("Row")
Public = TypeVar("Public")


def written(database: Database, change: Callable[[Session], Row],
            public: Callable[[Session, list[Row]], list[Public]]) -> Public:
    """A write route's transaction: the service's change, then the public form of the row it
    wrote, read in the same transaction (committed as the route returns, in its own thread)."""
    with database.writing() as session:
        return public(session, [change(session)])[0]


def deleted(database: Database, delete: Callable[[Session], object]) -> Response:
    """A delete route's transaction; its answer, 204 without a body."""
    with database.writing() as session:
        delete(session)
    return Response(status_code=204)
