"""The operations view: each controller's health, the VIP moves, the latest drills
(see envrouter.api.operations)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse

from envrouter.api.deps import Id, ReadDB, reader
from envrouter.api.operations import drill_file, list_drills
from envrouter.api.schemas import (
    READ,
    TOKEN_ONLY,
    Drills,
    EnvironmentHealth,
    ErrorBody,
    VipMoves,
)
from envrouter.errors import InfraError, NotFoundError
from envrouter.model import service
from envrouter.model.tokens import TokenInfo

router = APIRouter(prefix="/api/v1", tags=["operations"])

DrillId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                              description="the drill's directory name")]

_SVG = {200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}},
              "description": "the drill's timeline picture"},
        404: {"model": ErrorBody, "description": "no such drill, or it has no timeline, or the "
              "server has no --drills-dir"}}


@router.get("/environments/{env_id}/health", response_model=EnvironmentHealth, responses=READ)
def health(env_id: Id, request: Request, db: ReadDB) -> EnvironmentHealth:
    """Each controller's `envrouter status`, from the server's --status-command; "unknown"
    (with the error) without one or when it fails."""
    service.get_environment_row(db, env_id)
    probe = request.app.state.status_probe
    if probe is None:
        return EnvironmentHealth(source="unknown", updated_at=None, controllers=[],
                                 error="the server has no --status-command")
    try:
        return EnvironmentHealth(**probe(env_id))
    except InfraError as exc:
        return EnvironmentHealth(source="unknown", updated_at=None, controllers=[],
                                 error=str(exc))


@router.get("/environments/{env_id}/vip-moves", response_model=VipMoves, responses=READ)
def vip_moves(env_id: Id, request: Request, db: ReadDB) -> VipMoves:
    """The VIP moves this server saw while polling the status command (in memory: since it
    started)."""
    service.get_environment_row(db, env_id)
    return VipMoves(**request.app.state.vip_moves.of(env_id))


@router.get("/drills", response_model=Drills, responses=TOKEN_ONLY)
def drills(request: Request, _auth: TokenInfo = Depends(reader)) -> Drills:
    """The newest drill reports of the server's --drills-dir (the lab's)."""
    directory = request.app.state.drills_dir
    return Drills(configured=bool(directory), drills=list_drills(directory))


@router.get("/drills/{drill_id}/timeline.svg", response_class=FileResponse,
            responses={**READ, **_SVG})
def drill_timeline(drill_id: DrillId, request: Request,
                   _auth: TokenInfo = Depends(reader)) -> FileResponse:
    path = drill_file(request.app.state.drills_dir, drill_id, "timeline.svg")
    if path is None:
        raise NotFoundError("drill timeline", drill_id)
    return FileResponse(path, media_type="image/svg+xml")
