"""The steps a plan is made of: one frozen dataclass per kind of change (pure data).

Every step names the namespace it acts in (`ns`, "" = the node) and carries a sentence for
the operator (`description`). The applier (apply.py) dispatches on the step's type, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from envrouter.agent.desired import AddrSpec, RouteSpec
from envrouter.agent.nftables.render import NftTableSpec


@dataclass(frozen=True, kw_only=True)
class Step:
    op: ClassVar[str] = ""
    ns: str
    description: str

    def __str__(self) -> str:
        return self.description


# ---- namespaces (`ns` is "": a namespace is created and deleted from the node)


@dataclass(frozen=True, kw_only=True)
class CreateNetns(Step):
    op: ClassVar[str] = "create_netns"
    name: str


@dataclass(frozen=True, kw_only=True)
class DeleteNetns(Step):
    op: ClassVar[str] = "delete_netns"
    name: str


@dataclass(frozen=True, kw_only=True)
class KeepNetns(Step):
    """Nothing to do: said so the operator sees why a teardown left a namespace."""

    op: ClassVar[str] = "keep_netns"
    name: str


# ---- links


@dataclass(frozen=True, kw_only=True)
class AddVeth(Step):
    """A veth pair in one message: `name` in `ns`, `peer` directly in `peer_ns`."""

    op: ClassVar[str] = "add_veth"
    name: str
    peer_ns: str
    peer: str


@dataclass(frozen=True, kw_only=True)
class MoveLink(Step):
    op: ClassVar[str] = "move_link"
    name: str
    to_ns: str


@dataclass(frozen=True, kw_only=True)
class SetAlias(Step):
    """Mark a link as the agent's (IFLA_IFALIAS = OWNER_ALIAS)."""

    op: ClassVar[str] = "set_alias"
    name: str


@dataclass(frozen=True, kw_only=True)
class SetMaster(Step):
    op: ClassVar[str] = "set_master"
    name: str
    master: str


@dataclass(frozen=True, kw_only=True)
class SetUp(Step):
    op: ClassVar[str] = "set_up"
    name: str


@dataclass(frozen=True, kw_only=True)
class DelLink(Step):
    op: ClassVar[str] = "del_link"
    name: str


@dataclass(frozen=True, kw_only=True)
class OvsAddPort(Step):
    op: ClassVar[str] = "ovs_add_port"
    bridge: str
    port: str


@dataclass(frozen=True, kw_only=True)
class OvsDelPort(Step):
    op: ClassVar[str] = "ovs_del_port"
    bridge: str
    port: str


# ---- addresses and routes


@dataclass(frozen=True, kw_only=True)
class AddAddr(Step):
    op: ClassVar[str] = "add_addr"
    addr: AddrSpec


@dataclass(frozen=True, kw_only=True)
class DelAddr(Step):
    op: ClassVar[str] = "del_addr"
    addr: AddrSpec


@dataclass(frozen=True, kw_only=True)
class AddRoute(Step):
    op: ClassVar[str] = "add_route"
    route: RouteSpec


@dataclass(frozen=True, kw_only=True)
class DelRoute(Step):
    op: ClassVar[str] = "del_route"
    route: RouteSpec


# ---- nftables, sysctls, files


@dataclass(frozen=True, kw_only=True)
class LoadNft(Step):
    """Load a table whole; `replace`: it was present when observed (delete it in the same
    transaction)."""

    op: ClassVar[str] = "load_nft"
    table: NftTableSpec
    replace: bool


@dataclass(frozen=True, kw_only=True)
class DeleteNft(Step):
    op: ClassVar[str] = "delete_nft"
    family: str
    name: str


@dataclass(frozen=True, kw_only=True)
class SetSysctl(Step):
    op: ClassVar[str] = "set_sysctl"
    key: str
    value: str


@dataclass(frozen=True, kw_only=True)
class WriteFile(Step):
    op: ClassVar[str] = "write_file"
    path: str
    content: str


@dataclass(frozen=True, kw_only=True)
class RemoveFile(Step):
    op: ClassVar[str] = "remove_file"
    path: str


def writes_file(steps: list[Step], path: str) -> bool:
    """Whether the plan writes the file at `path`."""
    return any(isinstance(s, WriteFile) and s.path == path for s in steps)
