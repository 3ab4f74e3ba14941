"""The token the caller holds: lets a client (the UI) know up front whether it may write."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from envrouter.api.deps import reader
from envrouter.api.schemas import TOKEN_ONLY
from envrouter.model.tokens import TokenInfo

router = APIRouter(prefix="/api/v1", tags=["tokens"])


class TokenPublic(BaseModel):
    name: str
    read_only: bool
    expires_at: datetime | None


@router.get("/token", response_model=TokenPublic, responses=TOKEN_ONLY)
def current_token(info: TokenInfo = Depends(reader)) -> TokenPublic:
    return TokenPublic(name=info.name, read_only=info.read_only, expires_at=info.expires_at)
