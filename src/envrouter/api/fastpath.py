"""A fast path for GET document, the agents' hot path.

Why: through FastAPI's routing, dependency and thread-pool machinery a GET document costs
about 1.4 ms of CPU, so 50 concurrent agents on a 2-core machine queue up to a p99 of hundreds
of milliseconds (target: 25 ms). This pure-ASGI middleware answers a GET that the normal route
has already answered, with the same bytes, before any of that machinery runs. It never decides
anything itself: on any doubt it falls through to the normal route, which then owns the answer
(401/403/404 bodies included).

It answers a request only when all of these hold:
- GET of a path the normal route served with 200 (`remember`), i.e. one of
  /api/v1/nodes/by-hostname/{hostname}/document and
  /api/v1/environments/{env_id}/nodes/{node}/document (node: id or hostname);
- the database has not changed since before that answer was read: SQLite's
  `PRAGMA data_version` (on a connection of our own that never writes) changes whenever any
  other connection, in any process, commits. The generation is sampled *before* the route opens
  its read transaction, so an answer is served only if nothing was committed since it was read;
- the bearer token is valid and not expired according to the token cache, exactly as on the
  normal route (so revocation is seen within the same window). When its entry has run out, one
  lookup refreshes it (TokenCache.get, in a worker thread) and concurrent requests with the same
  token await that one lookup: otherwise, every 5 s, all requests in flight would take the
  normal route at once, and the burst of worker threads starves the event loop.

On other databases (PostgreSQL, in-memory SQLite) there is no generation: every request takes
the normal route.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

from envrouter.api.deps import TokenCache
from envrouter.db.engine import Database
from envrouter.model.tokens import TokenInfo

_MAX_ENTRIES = 20000
_SUFFIX = "/document"
_PREFIX = "/api/v1/"


class FastDocuments:
    """Document bodies by request path, each tagged with the database generation it was read
    under."""

    def __init__(self, database_url: str) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[int, bytes, Any]] = {}
        self._conn: sqlite3.Connection | None = None
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            # autocommit; a short busy timeout: never stall the event loop, fall through instead
            self._conn = sqlite3.connect(
                url.database, timeout=0.05, isolation_level=None, check_same_thread=False
            )
        self.served = 0

    def generation(self) -> int | None:
        """Changes whenever anything is committed to the database; None: unknown."""
        if self._conn is None:
            return None
        try:
            with self._lock:
                return self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None

    def remember(self, path: str, generation: int | None, body: str, route: Any) -> None:
        """The normal route answered `path` with `body` (200), read after `generation`."""
        if generation is None:
            return
        with self._lock:
            if len(self._items) >= _MAX_ENTRIES:
                self._items.clear()
            self._items[path] = (generation, body.encode(), route)

    def has(self, path: str) -> bool:
        return path in self._items

    def lookup(self, path: str) -> tuple[bytes, Any] | None:
        hit = self._items.get(path)
        if hit is None:
            return None
        now = self.generation()
        if now is None or hit[0] != now:
            return None
        return hit[1], hit[2]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FastDocumentPath:
    """Pure ASGI middleware: the fast answer, else the wrapped app."""

    def __init__(self, app, documents: FastDocuments, tokens: TokenCache, db: Database) -> None:  # noqa: ANN001
        self.app = app
        self.documents = documents
        self.tokens = tokens
        self.db = db
        self._lookups: dict[str, asyncio.Future] = {}  # token refreshes in flight

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if (
                path.endswith(_SUFFIX)
                and path.startswith(_PREFIX)
                and self.documents.has(path)
                and await self._authorised(scope)
            ):
                hit = self.documents.lookup(path)
                if hit is not None:
                    body, route = hit
                    scope["route"] = route  # the metrics middleware labels by route template
                    self.documents.served += 1
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _authorised(self, scope) -> bool:  # noqa: ANN001
        """A valid reader token; anything else (the error answers too): the normal route."""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, secret = value.decode("latin-1").partition(" ")
                secret = secret.strip()
                if scheme.lower() != "bearer" or not secret:
                    return False
                cached, info = self.tokens.peek(secret)
                if not cached:
                    try:
                        info = await self._lookup(secret)
                    except Exception:  # noqa: BLE001 - the normal route reports it
                        return False
                return info is not None and not info.expired
        return False

    async def _lookup(self, secret: str) -> TokenInfo | None:
        """TokenCache.get (query + cache) once for all concurrent requests with `secret`."""
        future = self._lookups.get(secret)
        if future is None:
            future = asyncio.ensure_future(run_in_threadpool(self.tokens.get, self.db, secret))
            self._lookups[secret] = future
            future.add_done_callback(lambda _f: self._lookups.pop(secret, None))
        return await asyncio.shield(future)
