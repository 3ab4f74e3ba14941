"""Networks and their ranges."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from envrouter.api.deps import Id, ReadDB, Writer
from envrouter.api.schemas import READ, WRITE, NetworkCreate, NetworkPublic, NetworkUpdate, RangeIn
from envrouter.db.tables import NetworkRow
from envrouter.model import service

router = APIRouter(prefix="/api/v1", tags=["networks"])


def _public(row: NetworkRow) -> NetworkPublic:
    return NetworkPublic(
        id=row.id,
        environment_id=row.environment_id,
        name=row.name,
        role=row.role,
        cidr=row.cidr,
        gateway=row.gateway,
        vlan=row.vlan,
        bridge=row.bridge,
        ranges=[
            RangeIn(start=r.start_address, end=r.end_address)
            for r in row.ranges
            if ":" not in r.start_address
        ],
        cidr6=row.cidr6,
        gateway6=row.gateway6,
        ranges6=[
            RangeIn(start=r.start_address, end=r.end_address)
            for r in row.ranges
            if ":" in r.start_address
        ],
    )


@router.get("/environments/{env_id}/networks", response_model=list[NetworkPublic], responses=READ)
def list_networks(env_id: Id, db: ReadDB) -> list[NetworkPublic]:
    service.get_environment_row(db, env_id)
    rows = db.scalars(
        select(NetworkRow)
        .where(NetworkRow.environment_id == env_id)
        .options(selectinload(NetworkRow.ranges))
        .order_by(NetworkRow.id)
    ).all()
    return [_public(r) for r in rows]


@router.post(
    "/environments/{env_id}/networks",
    response_model=NetworkPublic,
    status_code=201,
    responses=WRITE,
)
def create_network(env_id: Id, body: NetworkCreate, database: Writer) -> NetworkPublic:
    with database.writing() as db:
        row = service.create_network(db, env_id, body.model_dump())
        out = _public(row)
    return out


@router.get("/networks/{network_id}", response_model=NetworkPublic, responses=READ)
def get_network(network_id: Id, db: ReadDB) -> NetworkPublic:
    return _public(service.get_network_row(db, network_id))


@router.patch("/networks/{network_id}", response_model=NetworkPublic, responses=WRITE)
def update_network(network_id: Id, body: NetworkUpdate, database: Writer) -> NetworkPublic:
    with database.writing() as db:
        row = service.update_network(db, network_id, body.model_dump(exclude_unset=True))
        out = _public(row)
    return out


@router.delete("/networks/{network_id}", status_code=204, responses=WRITE)
def delete_network(network_id: Id, database: Writer) -> Response:
    with database.writing() as db:
        service.delete_network(db, network_id)
    return Response(status_code=204)
