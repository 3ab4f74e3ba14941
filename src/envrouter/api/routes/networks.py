"""Networks and their ranges."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response

from envrouter.api.deps import Id, ReadDB, Writer, deleted, written
from envrouter.api.schemas import READ, WRITE, NetworkCreate, NetworkPublic, NetworkUpdate
from envrouter.db.tables import NetworkRow
from envrouter.model import service

router = APIRouter(prefix="/api/v1", tags=["networks"])


def _public(row: NetworkRow) -> NetworkPublic:
    """The model's entity (it splits the ranges by family) with the environment's id."""
    return NetworkPublic(environment_id=row.environment_id,
                         **asdict(service.network_entity(row)))


def _publics(_db: object, rows: list[NetworkRow]) -> list[NetworkPublic]:
    return [_public(r) for r in rows]


@router.get("/environments/{env_id}/networks", response_model=list[NetworkPublic], responses=READ)
def list_networks(env_id: Id, db: ReadDB) -> list[NetworkPublic]:
    service.get_environment_row(db, env_id)
    return _publics(db, service.network_rows(db, env_id))


@router.post(
    "/environments/{env_id}/networks",
    response_model=NetworkPublic,
    status_code=201,
    responses=WRITE,
)
def create_network(env_id: Id, body: NetworkCreate, database: Writer) -> NetworkPublic:
    fields = body.model_dump()
    return written(database, lambda db: service.create_network(db, env_id, fields), _publics)


@router.get("/networks/{network_id}", response_model=NetworkPublic, responses=READ)
def get_network(network_id: Id, db: ReadDB) -> NetworkPublic:
    return _public(service.get_network_row(db, network_id))


@router.patch("/networks/{network_id}", response_model=NetworkPublic, responses=WRITE)
def update_network(network_id: Id, body: NetworkUpdate, database: Writer) -> NetworkPublic:
    changes = body.model_dump(exclude_unset=True)
    return written(database, lambda db: service.update_network(db, network_id, changes),
                   _publics)


@router.delete("/networks/{network_id}", status_code=204, responses=WRITE)
def delete_network(network_id: Id, database: Writer) -> Response:
    return deleted(database, lambda db: service.delete_network(db, network_id))
