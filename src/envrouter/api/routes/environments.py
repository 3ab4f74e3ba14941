"""Environments."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from envrouter.api.deps import Id, ReadDB, Writer, deleted, written
from envrouter.api.schemas import (
    CREATE_TOP,
    READ,
    TOKEN_ONLY,
    WRITE,
    EnvironmentCreate,
    EnvironmentPublic,
    EnvironmentUpdate,
)
from envrouter.db.tables import EnvironmentRow
from envrouter.model import service

router = APIRouter(prefix="/api/v1", tags=["environments"])


def _public(session, rows) -> list[EnvironmentPublic]:  # noqa: ANN001
    counts = service.environment_counts(session, [r.id for r in rows])
    return [EnvironmentPublic(id=r.id, name=r.name, ha=r.ha, counts=counts[r.id]) for r in rows]


@router.get("/environments", response_model=list[EnvironmentPublic], responses=TOKEN_ONLY)
def list_environments(db: ReadDB) -> list[EnvironmentPublic]:
    return _public(db, db.scalars(select(EnvironmentRow).order_by(EnvironmentRow.id)).all())


@router.post(
    "/environments", response_model=EnvironmentPublic, status_code=201, responses=CREATE_TOP
)
def create_environment(body: EnvironmentCreate, database: Writer) -> EnvironmentPublic:
    return written(database, lambda db: service.create_environment(db, body.name, body.ha),
                   _public)


@router.get("/environments/{env_id}", response_model=EnvironmentPublic, responses=READ)
def get_environment(env_id: Id, db: ReadDB) -> EnvironmentPublic:
    return _public(db, [service.get_environment_row(db, env_id)])[0]


@router.patch("/environments/{env_id}", response_model=EnvironmentPublic, responses=WRITE)
def update_environment(env_id: Id, body: EnvironmentUpdate, database: Writer) -> EnvironmentPublic:
    changes = body.model_dump(exclude_unset=True)
    return written(database, lambda db: service.update_environment(db, env_id, changes), _public)


@router.delete("/environments/{env_id}", status_code=204, responses=WRITE)
def delete_environment(env_id: Id, database: Writer) -> Response:
    return deleted(database, lambda db: service.delete_environment(db, env_id))
