"""vrouter settings, VIPs, and the cluster's live state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request

from envrouter.api.deps import Id, ReadDB, Writer
from envrouter.api.schemas import (
    READ,
    WRITE,
    ClusterState,
    VipPublic,
    VipUpdate,
    VrouterSettingsPublic,
    VrouterSettingsUpdate,
)
from envrouter.errors import InfraError
from envrouter.model import service
from envrouter.model.entities import VIP_NETWORK_ROLES

router = APIRouter(prefix="/api/v1", tags=["vrouter"])

VipName = Literal[tuple(VIP_NETWORK_ROLES)]  # type: ignore[valid-type]

UNKNOWN_CLUSTER = {"source": "unknown", "quorate": None, "vip_holder": None, "nodes": []}


def _settings_public(settings) -> VrouterSettingsPublic:  # noqa: ANN001
    data = asdict(settings)
    data["dns_list"] = list(data["dns_list"])
    data["ntp_list"] = list(data["ntp_list"])
    return VrouterSettingsPublic(**data)


@router.get("/environments/{env_id}/vrouter", response_model=VrouterSettingsPublic, responses=READ)
def get_vrouter(env_id: Id, db: ReadDB) -> VrouterSettingsPublic:
    return _settings_public(service.get_settings(db, env_id))


@router.put("/environments/{env_id}/vrouter", response_model=VrouterSettingsPublic, responses=WRITE)
def put_vrouter(env_id: Id, body: VrouterSettingsUpdate, database: Writer) -> VrouterSettingsPublic:
    with database.writing() as db:
        changes = body.model_dump(exclude_unset=True)
        # null means "no change" for the switches and lists; for domain it means "no domain"
        changes = {k: v for k, v in changes.items() if v is not None or k == "domain"}
        settings = service.put_settings(db, env_id, changes)
    return _settings_public(settings)


@router.post(
    "/environments/{env_id}/vrouter/reserve-vips", response_model=list[VipPublic], responses=WRITE
)
def reserve_vips(env_id: Id, database: Writer) -> list[VipPublic]:
    with database.writing() as db:
        vips = service.reserve_vips(db, env_id)
    return [VipPublic(**v) for v in vips]


@router.get("/environments/{env_id}/vips", response_model=list[VipPublic], responses=READ)
def list_vips(env_id: Id, db: ReadDB) -> list[VipPublic]:
    return [VipPublic(**v) for v in service.list_vips(db, env_id)]


@router.put("/environments/{env_id}/vips/{name}", response_model=VipPublic, responses=WRITE)
def put_vip(
    env_id: Id,
    name: Annotated[VipName, Path()],
    body: VipUpdate,
    database: Writer,
) -> VipPublic:
    with database.writing() as db:
        vip = service.set_vip(db, env_id, name, body.address)
    return VipPublic(**vip)


@router.get("/environments/{env_id}/cluster", response_model=ClusterState, responses=READ)
def cluster(env_id: Id, request: Request, db: ReadDB) -> ClusterState:
    """Live cluster state when a probe is configured (app.state.cluster_probe); otherwise
    "unknown" -- never invented."""
    service.get_environment_row(db, env_id)
    probe = getattr(request.app.state, "cluster_probe", None)
    if probe is None:
        return ClusterState(**UNKNOWN_CLUSTER)
    try:
        state = probe(env_id)
    except InfraError as exc:  # a probe failing is "unknown", with the reason
        return ClusterState(**UNKNOWN_CLUSTER, error=str(exc))
    return ClusterState(**state)
