"""The steps a plan is made of: one frozen dataclass per kind of change (pure data).

Every step names the namespace it acts in (`ns`, "" = the node) and carries a sentence for
the operator (`description`). The applier (apply.py) dispatches on the step's type, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from envrouter.agent.desired import AddrSpec, RouteSpec
from envrouter.agent.nftables.render import NftTableSpec


@dataclass(frozen=True, kw_only=True)
class Step:
    op: ClassVar[str] = ""  # the kind's name in snake case, e.g. "add_veth" (tests, logs)
    ns: str
    description: str

    def __init_subclass__(cls, **kw: object) -> None:
        super().__init_subclass__(**kw)
        cls.op = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()

    def __str__(self) -> str:
        return self.description


# ---- namespaces (`ns` is "": a namespace is created and deleted from the node)


@dataclass(frozen=True, kw_only=True)
class CreateNetns(Step):
    name: str


@dataclass(frozen=True, kw_only=True)
class DeleteNetns(Step):
    name: str


@dataclass(frozen=True, kw_only=True)
class KeepNetns(Step):
    """Nothing to do: said so the operator sees why a teardown left a namespace."""

    name: str


# ---- links


@dataclass(frozen=True, kw_only=True)
class AddVeth(Step):
    """A veth pair in one message: `name` in `ns`, `peer` directly in `peer_ns`."""

    name: str
    peer_ns: str
    peer: str


@dataclass(frozen=True, kw_only=True)
class MoveLink(Step):
    name: str
    to_ns: str


@dataclass(frozen=True, kw_only=True)
class SetAlias(Step):
    """Mark a link as the agent's (IFLA_IFALIAS = OWNER_ALIAS)."""

    name: str


@dataclass(frozen=True, kw_only=True)
class SetMaster(Step):
    name: str
    master: str


@dataclass(frozen=True, kw_only=True)
class SetUp(Step):
    name: str


@dataclass(frozen=True, kw_only=True)
class DelLink(Step):
    name: str


@dataclass(frozen=True, kw_only=True)
class OvsAddPort(Step):
    bridge: str
    port: str


@dataclass(frozen=True, kw_only=True)
class OvsDelPort(Step):
    bridge: str
    port: str


@dataclass(frozen=True, kw_only=True)
class SetTxChecksum(Step):
    """TX checksum offload of a link on or off (`ethtool -K DEV tx on|off`): a device that
    feeds an OVS userspace datapath must hand it finished checksums (envrouter.agent.ovs)."""

    name: str
    on: bool


# ---- addresses and routes


@dataclass(frozen=True, kw_only=True)
class AddAddr(Step):
    addr: AddrSpec


@dataclass(frozen=True, kw_only=True)
class DelAddr(Step):
    addr: AddrSpec


@dataclass(frozen=True, kw_only=True)
class AddRoute(Step):
    route: RouteSpec


@dataclass(frozen=True, kw_only=True)
class DelRoute(Step):
    route: RouteSpec


# ---- nftables, sysctls, files


@dataclass(frozen=True, kw_only=True)
class LoadNft(Step):
    """Load a table whole; `replace`: it was present when observed (delete it in the same
    transaction)."""

    table: NftTableSpec
    replace: bool


@dataclass(frozen=True, kw_only=True)
class DeleteNft(Step):
    family: str
    name: str


@dataclass(frozen=True, kw_only=True)
class SetSysctl(Step):
    key: str
    value: str


@dataclass(frozen=True, kw_only=True)
class WriteFile(Step):
    path: str
    content: str


@dataclass(frozen=True, kw_only=True)
class RemoveFile(Step):
    path: str


def writes_file(steps: list[Step], path: str) -> bool:
    """Whether the plan writes the file at `path`."""
    return any(isinstance(s, WriteFile) and s.path == path for s in steps)
