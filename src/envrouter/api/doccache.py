"""Serialised deployment documents, cached per (node, environment revision).

Every write to an environment bumps its revision (envrouter.model.service.bump_revision), so a
cached document is served only while nothing it depends on has changed. The revision and the
document are read in the same transaction; a document is never older than its key.
"""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from envrouter.db.tables import EnvironmentRow, NodeRow
from envrouter.errors import NotFoundError
from envrouter.model import service


class DocumentCache:
    def __init__(self, max_entries: int = 20000) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[int, int, int], str] = {}
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def document_json(
        self, session: Session, *, node_id: int | None = None, hostname: str | None = None
    ) -> tuple[int, str]:
        """(environment id, document JSON) of a node given by id or hostname."""
        query = select(NodeRow.id, NodeRow.environment_id, EnvironmentRow.revision).join(
            EnvironmentRow, EnvironmentRow.id == NodeRow.environment_id
        )
        if node_id is not None:
            query = query.where(NodeRow.id == node_id)
        else:
            query = query.where(NodeRow.hostname == (hostname or "").lower())
        found = session.execute(query).first()
        if found is None:
            raise NotFoundError("node", node_id if node_id is not None else hostname)
        key = (found.id, found.environment_id, found.revision)
        with self._lock:
            body = self._items.get(key)
        if body is not None:
            self.hits += 1
            return found.environment_id, body
        self.misses += 1
        body = service.node_document(
            session, service.get_node_row(session, found.id)
        ).model_dump_json()
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.clear()
            self._items[key] = body
        return found.environment_id, body
