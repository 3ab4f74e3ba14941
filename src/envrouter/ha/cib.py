"""Apply a layout to the CIB idempotently through cibadmin / crm_attribute (effects).

Mark and sweep on what the CIB really has: for every resource and constraint envrouter owns
(fixed resource ids, constraint ids starting with ``envrouter-``) compare the desired element
with the CIB's (tag, attributes and children, whitespace ignored); create what is missing,
replace what differs, delete owned elements the layout no longer has, and touch nothing else.
Cluster options and resource defaults are compared value by value. Applying the same layout
twice writes nothing, so the CIB's epoch does not move. The fencing devices the CIB has (the
operator's, never envrouter's) get the layout's orders after the VIPs
(`layout.fencing_device_orders`); apply again after adding or removing a device.
``CIB_file=<path>`` in the environment makes every call work on a CIB file instead of the live
cluster (the tests use that).
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

from envrouter.errors import InfraError
from envrouter.ha.layout import (
    CONSTRAINT_PREFIX,
    OWNED_RESOURCE_IDS,
    RSC_DEFAULTS_ID,
    Layout,
    rsc_defaults_element,
)


def _run(argv: list[str], *, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              env=os.environ.copy())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"{argv[0]}: {exc}") from exc
    if proc.returncode not in ok:
        raise InfraError(f"{' '.join(argv[:3])} failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def canonical(el: ET.Element) -> tuple:
    """What makes two CIB elements equal: tag, attributes, children in order; no whitespace."""
    return (el.tag, tuple(sorted(el.attrib.items())), tuple(canonical(c) for c in el))


def query_section(scope: str) -> ET.Element:
    proc = _run(["cibadmin", "--query", "--scope", scope], ok=(0, 105, 6))
    if proc.returncode != 0 or not proc.stdout.strip():
        return ET.Element(scope)
    return ET.fromstring(proc.stdout)


def _owned_resource(el: ET.Element) -> bool:
    if el.get("id") in OWNED_RESOURCE_IDS:
        return True
    return any(p.get("provider") == "envrouter" for p in el.iter("primitive"))


def _owned_constraint(el: ET.Element) -> bool:
    return (el.get("id") or "").startswith(CONSTRAINT_PREFIX)


def fencing_devices(resources: ET.Element) -> list[str]:
    """The ids of the fencing devices (``class="stonith"`` primitives) the operator configured,
    top-level or in a group, in the CIB's order."""
    return [p.get("id") or "" for p in resources.iter("primitive") if p.get("class") == "stonith"]


def names_resources(constraint: ET.Element) -> set[str]:
    """The resource ids a constraint names: its rsc, with-rsc, first, then, and the members
    of its resource sets."""
    ids = {constraint.get(a) for a in ("rsc", "with-rsc", "first", "then")}
    ids |= {r.get("id") for r in constraint.iter("resource_ref")}
    return {i for i in ids if i}


def plan_section(
    current: ET.Element, desired: list[ET.Element], owned
) -> list[tuple[str, ET.Element]]:
    """Pure: the (op, element) list turning `current`'s owned children into `desired`."""
    have = {c.get("id"): c for c in current if owned(c)}
    want_ids = {d.get("id") for d in desired}
    steps: list[tuple[str, ET.Element]] = []
    for d in desired:
        c = have.get(d.get("id"))
        if c is None:
            steps.append(("create", d))
        elif canonical(c) != canonical(d):
            steps.append(("replace", d))
    for cid, c in have.items():
        if cid not in want_ids:
            steps.append(("delete", c))
    return steps


def _write(scope: str, op: str, el: ET.Element) -> None:
    text = ET.tostring(el, encoding="unicode")
    if op == "delete":
        _run(["cibadmin", "--delete", "--scope", scope,
              "--xml-text", f"<{el.tag} id=\"{el.get('id')}\"/>"])
    elif op == "create" and _run(["cibadmin", "--query", "--scope", scope],
                                 ok=(0, 6, 105)).returncode != 0:
        # an empty CIB may lack the section (rsc_defaults): create it around the element
        _run(["cibadmin", "--create", "--scope", "configuration",
              "--xml-text", f"<{scope}>{text}</{scope}>"])
    else:
        _run(["cibadmin", f"--{op}", "--scope", scope, "--xml-text", text])


def _attribute(kind: str, name: str) -> str | None:
    proc = _run(["crm_attribute", "--type", kind, "--name", name, "--query", "--quiet"],
                ok=(0, 6, 105))
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value else None


def plan(layout: Layout) -> list[str]:
    """What apply would change, as descriptions (reads the CIB, changes nothing)."""
    return [d for d, _ in _changes(layout)]


def _changes(layout: Layout) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for name, value in layout.cluster_options.items():
        if _attribute("crm_config", name) != value:
            out.append((f"set cluster option {name}={value}", ("attr", "crm_config", name, value)))
    defaults = rsc_defaults_element(layout.rsc_defaults)
    for op, el in plan_section(query_section("rsc_defaults"), [defaults],
                               lambda e: e.get("id") == RSC_DEFAULTS_ID):
        out.append((f"{op} resource defaults", ("cib", "rsc_defaults", op, el)))
    resources = query_section("resources")
    layout = layout.with_fencing_devices(fencing_devices(resources))
    res = plan_section(resources, layout.resources, _owned_resource)
    constraints = query_section("constraints")
    con = plan_section(constraints, layout.constraints, _owned_constraint)
    # a constraint replaced in place that names a resource about to go (an older layout's
    # order by the same id) would make the schema refuse that resource's deletion: it goes
    # with the deletions and comes back with the creations
    gone = {el.get("id") for op, el in res if op == "delete"}
    have = {c.get("id"): c for c in constraints}
    con = [step for op, el in con for step in (
        [("delete", have[el.get("id")]), ("create", el)]
        if op == "replace" and names_resources(have[el.get("id")]) & gone else [(op, el)])]
    # constraints go before the resources they name are removed and after those are created;
    # resources that go before those that come: a resource replaced by one of another id
    # (the one-VIP primitives by `vips`) never runs beside it, holding the same addresses
    for op, el in [s for s in con if s[0] == "delete"]:
        out.append((f"{op} constraint {el.get('id')}", ("cib", "constraints", op, el)))
    for op, el in sorted(res, key=lambda s: s[0] != "delete"):
        out.append((f"{op} resource {el.get('id')}", ("cib", "resources", op, el)))
    for op, el in [s for s in con if s[0] != "delete"]:
        out.append((f"{op} constraint {el.get('id')}", ("cib", "constraints", op, el)))
    return out


# how long apply waits for the deleted resources to stop before it creates others
SETTLE_TIMEOUT_S = 120


def _stopped_before_created(stopping: bool) -> None:
    """Between the deletions of resources and the creations: a deleted resource is stopped by
    a transition of its own, and a resource created meanwhile may start in the same one, beside
    it (the older layout's one-VIP primitives removing the addresses `vips` just added). The
    live cluster settles first (`crm_resource --wait`); a CIB file has nothing to stop. A
    cluster that does not settle in time (another resource failing over and over) does not
    stop the apply halfway: the creations follow, as without the wait."""
    if stopping and "CIB_file" not in os.environ:
        _run(["crm_resource", "--wait", f"--timeout={SETTLE_TIMEOUT_S}s"],
             ok=tuple(range(256)))


def apply(layout: Layout) -> list[str]:
    """Bring the CIB to the layout; returns what changed ([] when it already matched)."""
    done = []
    deleted = False
    for desc, action in _changes(layout):
        if action[0] == "attr":  # type: ignore[index]
            _, kind, name, value = action  # type: ignore[misc]
            _run(["crm_attribute", "--type", kind, "--name", name, "--update", value])
        else:
            _, scope, op, el = action  # type: ignore[misc]
            if scope == "resources" and op != "delete":
                _stopped_before_created(deleted)
                deleted = False
            _write(scope, op, el)
            deleted = deleted or (scope == "resources" and op == "delete")
        done.append(desc)
    return done


def epoch() -> tuple[int, int, int]:
    """(admin_epoch, epoch, num_updates) of the CIB: an unchanged epoch means nothing written."""
    root = ET.fromstring(_run(["cibadmin", "--query"]).stdout)
    return (int(root.get("admin_epoch", "0")), int(root.get("epoch", "0")),
            int(root.get("num_updates", "0")))
