"""Pydantic schemas of the REST API: Create / Update / Public per resource.

Input types are kept plain (str, int, bool): the domain rules in envrouter.model check the
values and name the field at fault, so the API and the CLI refuse the same things the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorItem(BaseModel):
    object: str
    field: str
    reason: str


class ErrorBody(BaseModel):
    detail: list[ErrorItem]


class AuthErrorBody(BaseModel):
    detail: str


class Counts(BaseModel):
    networks: int
    nodes: int
    vips: int


class EnvironmentCreate(_In):
    name: str = Field(max_length=63)
    ha: bool = False


class EnvironmentUpdate(_In):
    name: str | None = Field(None, max_length=63)
    ha: bool | None = None


class EnvironmentPublic(BaseModel):
    id: int
    name: str
    ha: bool
    counts: Counts


class RangeIn(_In):
    start: str = Field(max_length=64)
    end: str = Field(max_length=64)


class NetworkCreate(_In):
    name: str = Field(max_length=32)
    role: Literal["admin", "management", "public", "storage", "other"]
    cidr: str = Field(max_length=64)
    gateway: str | None = Field(None, max_length=64)
    vlan: int | None = None
    bridge: str | None = Field(None, max_length=15)
    ranges: list[RangeIn] = Field(default_factory=list, max_length=64)


class NetworkUpdate(_In):
    name: str | None = Field(None, max_length=32)
    gateway: str | None = Field(None, max_length=64)
    vlan: int | None = None
    bridge: str | None = Field(None, max_length=15)
    ranges: list[RangeIn] | None = Field(None, max_length=64)


class NetworkPublic(BaseModel):
    id: int
    environment_id: int
    name: str
    role: str
    cidr: str
    gateway: str | None
    vlan: int | None
    bridge: str
    ranges: list[RangeIn]


class NodeCreate(_In):
    hostname: str = Field(max_length=253)
    roles: list[str] = Field(default_factory=list, max_length=16)
    status: str = Field("discovered", max_length=32)
    addresses: dict[str, str] = Field(default_factory=dict)


class NodeUpdate(_In):
    hostname: str | None = Field(None, max_length=253)
    roles: list[str] | None = Field(None, max_length=16)
    status: str | None = Field(None, max_length=32)


class NodePublic(BaseModel):
    id: int
    environment_id: int
    hostname: str
    roles: list[str]
    status: str
    addresses: dict[str, str] = Field(description="network name -> the node's host address")
    namespace_address: str | None = Field(
        None, description="controllers: the vrouter namespace's own management address"
    )


class VipPublic(BaseModel):
    name: str
    network: str
    namespace: str
    address: str
    user_defined: bool


class VipUpdate(_In):
    address: str | None = Field(..., max_length=64, description="null: back to automatic")


class VrouterSettingsPublic(BaseModel):
    enabled: bool
    dns_list: list[str]
    ntp_list: list[str]
    domain: str | None
    nat: bool
    conntrack_sync: bool
    bridge_kind: str
    host_link_cidr: str
    namespace: str


class VrouterSettingsUpdate(_In):
    """Fields left out keep their current value."""

    enabled: bool | None = None
    dns_list: list[str] | None = Field(None, max_length=16)
    ntp_list: list[str] | None = Field(None, max_length=16)
    domain: str | None = Field(None, max_length=253)
    nat: bool | None = None
    conntrack_sync: bool | None = None
    bridge_kind: str | None = Field(None, max_length=8)
    host_link_cidr: str | None = Field(None, max_length=64)
    namespace: str | None = Field(None, max_length=32)


class ClusterState(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str
    quorate: bool | None
    vip_holder: str | None
    nodes: list[dict] = Field(default_factory=list)
