"""API tokens: random secrets shown once, stored as their SHA-256 digest."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from envrouter.db.tables import TokenRow
from envrouter.errors import ConflictError, NotFoundError, ValidationError

TOKEN_PREFIX = "ert_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    read_only: bool
    created_at: datetime
    expires_at: datetime | None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= _now()


def create_token(
    session: Session, name: str, *, read_only: bool = False, expires_days: float | None = None
) -> str:
    """Store a new token and return its secret (the only time it is shown)."""
    if not _NAME_RE.match(name or ""):
        raise ValidationError("token", "name", f"{name!r}: 1-64 of A-Z a-z 0-9 _ . @ -")
    if expires_days is not None and expires_days <= 0:
        raise ValidationError(f"token {name!r}", "expires_days", "must be positive")
    if session.scalars(select(TokenRow.id).where(TokenRow.name == name)).first():
        raise ConflictError(f"token {name!r}", "name", "a token has this name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = _now()
    session.add(
        TokenRow(
            name=name,
            token_hash=hash_token(secret),
            read_only=read_only,
            created_at=now,
            expires_at=now + timedelta(days=expires_days) if expires_days else None,
        )
    )
    session.flush()
    return secret


def lookup_token(session: Session, secret: str) -> TokenInfo | None:
    row = session.scalars(select(TokenRow).where(TokenRow.token_hash == hash_token(secret))).first()
    if row is None:
        return None
    return TokenInfo(row.name, row.read_only, row.created_at, row.expires_at)


def list_tokens(session: Session) -> list[TokenInfo]:
    return [
        TokenInfo(r.name, r.read_only, r.created_at, r.expires_at)
        for r in session.scalars(select(TokenRow).order_by(TokenRow.id))
    ]


def revoke_token(session: Session, name: str) -> None:
    row = session.scalars(select(TokenRow).where(TokenRow.name == name)).first()
    if row is None:
        raise NotFoundError("token", name)
    session.delete(row)
    session.flush()
