"""Running the upgrade (effects): the database, the nodes (through a NodeRunner), the state
file. The order and what is left to do come from the pure planner (`envrouter.upgrade.plan`).

`preview` answers "what would the documents be" without changing anything: in ONE database
transaction it migrates the schema (DDL is transactional in SQLite and PostgreSQL), reserves the
VIPs and enables the vrouter exactly as the real steps will, builds every document before and
after, and rolls it all back. A public range too small fails here with the IPAM's own message,
so `--dry-run` reports it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from envrouter.db import migrate
from envrouter.db.engine import Database, make_engine
from envrouter.document import DeploymentDocument, parse_document
from envrouter.errors import InfraError, ValidationError
from envrouter.upgrade import plan as P
from envrouter.upgrade import progress as prog
from envrouter.upgrade.runner import NodeRunner
from envrouter.waiting import poll


@dataclass
class Preview:
    env_id: int
    before: dict[str, DeploymentDocument]
    after: dict[str, DeploymentDocument]
    controllers: list[str]
    observed: P.Observed


def _documents(session: Session, env_id: int, *, active: bool | None
               ) -> dict[str, DeploymentDocument]:
    from envrouter.model.documents import build_document
    from envrouter.model.service import load_environment, load_nodes

    env = load_environment(session, env_id)
    nodes = load_nodes(session, env_id)
    controllers = [n for n in nodes if n.is_controller]
    return {n.hostname: build_document(env, n, controllers, active=active) for n in nodes}


def _reserved(session: Session, env_id: int) -> bool:
    from envrouter.model.entities import VIP_MANAGEMENT, VIP_PUBLIC
    from envrouter.model.service import load_controllers, load_environment

    env = load_environment(session, env_id)
    if env.vip(VIP_MANAGEMENT) is None or env.vip(VIP_PUBLIC) is None:
        return False
    return all(c.namespace_address for c in load_controllers(session, env_id))


def preview(url: str | None, env_name: str, *, before_only: bool = False) -> Preview:
    """Everything the planner needs, computed in one transaction that is rolled back."""
    from envrouter.model.service import (
        environment_by_name,
        get_settings,
        list_vips,
        put_settings,
        reserve_vips,
    )

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                revision = MigrationContext.configure(conn).get_current_revision()
                head = migrate.head()
                if revision != head:
                    cfg = migrate._config(engine)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                session = Session(bind=conn, autoflush=True)
                env_row = environment_by_name(session, env_name)
                env_id = env_row.id
                reserved = _reserved(session, env_id)
                enabled = get_settings(session, env_id).enabled
                before = _documents(session, env_id, active=False)
                after: dict[str, DeploymentDocument] = {}
                vips: dict[str, str] = {}
                if not before_only:
                    reserve_vips(session, env_id)
                    put_settings(session, env_id, {"enabled": True})
                    session.flush()
                    vips = {v["name"]: v["address"] for v in list_vips(session, env_id)}
                    after = _documents(session, env_id, active=None)
                controllers = sorted(n for n, d in before.items() if "controller" in d.node.roles)
                session.close()
            finally:
                trans.rollback()
    finally:
        engine.dispose()
    return Preview(env_id, before, after, controllers,
                   P.Observed(revision=revision, head=head, vips_reserved=reserved,
                              enabled=enabled, vips=vips))


def current_documents(url: str | None, env_id: int) -> dict[str, DeploymentDocument]:
    db = Database(url)
    try:
        with db.reading() as s:
            return _documents(s, env_id, active=None)
    finally:
        db.dispose()


# ------------------------------------------------------------------------------- running


class Stopped(Exception):
    """The upgrade stopped at a step; every node is left working."""

    def __init__(self, step: P.Step, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"{step.text}: {reason}")


@dataclass
class Options:
    check_name: str | None = None
    stonith: bool = True
    chrony_restart: str | None = None
    vip_timeout: float = 180.0
    check_timeout: float = 30.0
    packages: P.PackageSource | None = None  # None: no package step
    apt_timeout: float = 900.0


@dataclass
class Result:
    steps_run: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # hostname -> moved/not moved/moved back
    stopped: dict[str, str] | None = None


class Reporter:
    """Hooks the CLI fills in (Rich); the default says nothing."""

    def start(self, step: P.Step) -> None: ...
    def done(self, step: P.Step, seconds: float) -> None: ...
    def failed(self, step: P.Step, seconds: float, reason: str) -> None: ...
    def note(self, text: str) -> None: ...


def _poll(fn: Callable[[], str | None], timeout: float, interval: float = 0.5) -> str | None:
    """Call fn until it returns None (ok) or the time is up; the last reason otherwise."""
    reasons: list[str | None] = []

    def ok() -> bool:
        reasons.append(fn())
        return reasons[-1] is None

    return None if poll(ok, timeout, interval) else reasons[-1]


class Upgrade:
    def __init__(self, url: str | None, env_name: str, runner: NodeRunner, state_file: str,
                 options: Options | None = None, reporter: Reporter | None = None) -> None:
        self.url = url
        self.env_name = env_name
        self.runner = runner
        self.state_file = state_file
        self.options = options or Options()
        self.reporter = reporter or Reporter()

    # --- planning ---------------------------------------------------------------------------
    def plan(self) -> tuple[Preview, prog.Progress, list[P.Step]]:
        pv = preview(self.url, self.env_name)
        progress = prog.load(self.state_file, self.env_name)
        before = self.before_documents(pv, progress)
        steps = P.plan_upgrade(before, pv.after, pv.controllers, pv.observed,
                               done=progress.done, moved=progress.moved,
                               packages=self.options.packages)
        return pv, progress, steps

    @staticmethod
    def before_documents(pv: Preview, progress: prog.Progress) -> dict[str, DeploymentDocument]:
        """The documents from before the upgrade: the recorded ones win (the first run saw
        them); otherwise, when the vrouter is already enabled (deployed with it, or moved by
        other means), the current ones: nothing to move, only packages to upgrade; otherwise
        those the database gives with the vrouter inactive."""
        if not progress.before and pv.observed.enabled:
            return dict(pv.after)
        out = dict(pv.before)
        for name, text in progress.before.items():
            out[name] = parse_document(text)
        return out

    # --- running ----------------------------------------------------------------------------
    def run(self) -> Result:
        pv, progress, steps = self.plan()
        for name, doc in self.before_documents(pv, progress).items():
            progress.before.setdefault(name, doc.model_dump_json())
        progress.stopped = None
        prog.save(self.state_file, progress)
        before = self.before_documents(pv, progress)
        result = Result()
        try:
            for step in steps:
                t0 = time.monotonic()
                self.reporter.start(step)
                try:
                    self._run_step(step, pv, before, progress)
                except Stopped as exc:
                    self.reporter.failed(step, time.monotonic() - t0, exc.reason)
                    progress.stopped = {"step": step.key, "reason": exc.reason}
                    raise
                except Exception as exc:
                    reason = str(exc)
                    self.reporter.failed(step, time.monotonic() - t0, reason)
                    progress.stopped = {"step": step.key, "reason": reason}
                    raise Stopped(step, reason) from exc
                finally:
                    prog.save(self.state_file, progress)
                progress.mark_done(step.key)
                if step.kind == P.MOVE:
                    progress.nodes[step.node or ""] = P.MOVED
                prog.save(self.state_file, progress)
                result.steps_run.append(step.key)
                self.reporter.done(step, time.monotonic() - t0)
        except Stopped as exc:
            result.stopped = {"step": exc.step.key, "reason": exc.reason}
        result.nodes = P.final_states(before, pv.after, pv.controllers, progress.nodes)
        return result

    def _run_step(self, step: P.Step, pv: Preview, before: dict[str, DeploymentDocument],
                  progress: prog.Progress) -> None:
        kind = step.kind
        if kind == P.MIGRATE:
            migrate.upgrade(self.url)
        elif kind == P.RESERVE:
            from envrouter.model.service import reserve_vips

            self._db_write(lambda s: reserve_vips(s, pv.env_id))
        elif kind == P.ENABLE:
            from envrouter.model.service import put_settings

            self._db_write(lambda s: put_settings(s, pv.env_id, {"enabled": True}))
        elif kind == P.UPGRADE_PACKAGES:
            self._upgrade_packages(step, pv.after[step.node or ""], step.node in pv.controllers)
        elif kind == P.CHECK_PACKAGES:
            self._check_packages(step, pv.after[step.node or ""])
        elif kind == P.DEPLOY_VROUTER:
            doc = self._after(pv)[step.node or ""]
            self._push(step.node or "", doc)
            self._agent_apply(step, doc, "vrouter")
        elif kind == P.HA_INSTALL:
            self._must(step, step.node or "", [*self.runner.envrouter(), "ha", "install"],
                       timeout=120)
        elif kind == P.HA_APPLY:
            argv = [*self.runner.envrouter(), "ha", "apply", "--document", P.NODE_DOCUMENT]
            if not self.options.stonith:
                argv.append("--no-stonith")
            self._must(step, step.node or "", argv, timeout=300)
        elif kind == P.WAIT_VIPS:
            self._wait_vips(step, pv)
        elif kind == P.MOVE:
            self._move(step, before[step.node or ""], self._after(pv)[step.node or ""],
                       progress)
        else:  # pragma: no cover - the planner makes only the kinds above
            raise ValidationError("upgrade", "step", f"unknown step {kind!r}")

    def _db_write(self, fn: Callable[[Session], Any]) -> None:
        db = Database(self.url)
        try:
            with db.writing() as s:
                fn(s)
        finally:
            db.dispose()

    def _after(self, pv: Preview) -> dict[str, DeploymentDocument]:
        """The documents as the control plane now gives them (the vrouter enabled)."""
        docs = current_documents(self.url, pv.env_id)
        for c in pv.controllers:
            if docs[c].vrouter is None:
                raise InfraError(f"the control plane gives {c} no vrouter section: is the "
                                 "vrouter enabled and are the VIPs reserved?")
        return docs

    def _must(self, step: P.Step, node: str, argv: Sequence[str], timeout: float = 60,
              input: str | None = None) -> str:
        proc = self.runner.run(node, argv, timeout=timeout, input=input)
        if proc.returncode != 0:
            raise InfraError(f"{node}: {' '.join(argv[-4:])} exited {proc.returncode}: "
                             f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        return proc.stdout

    def _push(self, node: str, doc: DeploymentDocument) -> None:
        """Write the document to the node (tee reads it from stdin)."""
        text = doc.model_dump_json(indent=2) + "\n"
        proc = self.runner.run(node, ["tee", P.PUSHED_DOCUMENT], input=text, timeout=30)
        if proc.returncode != 0:
            raise InfraError(f"{node}: cannot write {P.PUSHED_DOCUMENT}: "
                             f"{proc.stderr.strip()[-300:]}")

    def _agent_apply(self, step: P.Step, doc: DeploymentDocument, scope: str) -> None:
        node = doc.node.hostname
        argv = [*self.runner.envrouter(), "agent", "apply", "--document", P.PUSHED_DOCUMENT,
                "--scope", scope, "--state-dir", P.NODE_STATE_DIR,
                *self.runner.agent_options(node)]
        if scope != "vrouter" and self.options.chrony_restart:
            argv += ["--chrony-restart", self.options.chrony_restart]
        self._must(step, node, argv, timeout=300)

    def _versions(self, node: str, names: Sequence[str]) -> dict[str, str]:
        # dpkg-query exits 1 when a package is unknown: the others are still printed
        proc = self.runner.run(node, P.version_query_argv(names), timeout=60)
        return P.installed_versions(proc.stdout)

    def _upgrade_packages(self, step: P.Step, doc: DeploymentDocument, controller: bool
                          ) -> None:
        """apt-get install on the node; on a controller in node maintenance (no monitor runs
        while files are replaced, nothing moves), then the resources whose daemon changed
        restarted in place by their own agents, then maintenance off: the VIPs stay."""
        assert self.options.packages is not None
        node = doc.node.hostname
        items = P.node_packages(doc, self.options.packages)
        names = P.package_names(items)
        before = self._versions(node, names)
        if not self.options.packages.files:
            self._must(step, node, ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get",
                                    "update", "-q"], timeout=self.options.apt_timeout)
        # a controller of an environment without the vrouter may run no cluster yet: then
        # there is nothing to keep in place
        clustered = controller and self.runner.run(
            node, P.CLUSTER_QUERY_ARGV, timeout=60).returncode == 0
        if clustered:
            self._must(step, node, P.maintenance_argv(node, True), timeout=60)
        try:
            self._must(step, node, P.apt_install_argv(items), timeout=self.options.apt_timeout)
            changed = P.changed_packages(before, self._versions(node, names))
            restarted = []
            for resource in P.resources_to_restart(changed, doc.vrouter) if clustered else []:
                self._restart_in_place(step, node, resource)
                restarted.append(resource)
        finally:
            if clustered:
                self._must(step, node, P.maintenance_argv(node, False), timeout=60)
        versions = ", ".join(f"{p} {old or 'new'} -> {new}" for p, (old, new) in changed.items())
        self.reporter.note(f"{node}: {versions or 'every package already current'}"
                           + (f"; restarted {', '.join(restarted)}" if restarted else ""))

    def _restart_in_place(self, step: P.Step, node: str, resource: str) -> None:
        """Stop and start the resource's instance on this node with its agent (the node is
        in maintenance: Pacemaker does not react); a promoted instance is promoted again."""
        from envrouter.ops.parse import parse_crm_mon

        mon = self._must(step, node, ["crm_mon", "-1", "--output-as=xml"], timeout=60)
        promoted = P.promoted_here(parse_crm_mon(mon).resources, resource, node)
        self._must(step, node, P.force_argv("stop", resource), timeout=120)
        self._must(step, node, P.force_argv("start", resource), timeout=120)
        if promoted:
            self._must(step, node, P.force_argv("promote", resource), timeout=120)

    def _check_packages(self, step: P.Step, doc: DeploymentDocument) -> None:
        node = doc.node.hostname
        assert doc.vrouter is not None
        dpkg = self.runner.run(node, P.package_check_argv(doc.vrouter), timeout=60)
        which = self.runner.run(node, P.binary_check_argv(doc.vrouter), timeout=60)
        pkgs = P.missing_packages(doc.vrouter, dpkg.stdout)
        bins = P.missing_binaries(doc.vrouter, which.stdout)
        if pkgs or bins:
            parts = []
            if pkgs:
                parts.append("Debian packages " + ", ".join(pkgs))
            if bins:
                parts.append("programs " + ", ".join(bins))
            raise InfraError(f"{node} lacks " + " and ".join(parts)
                             + " (apt-get install them, then run the upgrade again)")

    def _wait_vips(self, step: P.Step, pv: Preview) -> None:
        node = step.node or ""
        vr = self._after(pv)[node].vrouter
        assert vr is not None
        for what, address in (("management VIP", str(vr.vip_management.address)),
                              ("public VIP", str(vr.vip_public.address))):
            def answers(address: str = address) -> str | None:
                p = self.runner.run(node, ["ping", "-c", "1", "-W", "1", address], timeout=10)
                return None if p.returncode == 0 else f"ping {address} from {node}: no answer"

            why = _poll(answers, self.options.vip_timeout, interval=1.0)
            if why is not None:
                raise InfraError(f"the {what} does not answer after "
                                 f"{self.options.vip_timeout:.0f} s: {why}")
        # the DNS and NTP services behind the management VIP answer too (they start after
        # the namespace): no node is moved before its checks can pass
        doc = self._after(pv)[node]
        name = P.check_name(doc, self.options.check_name)
        vip = str(vr.vip_management.address)
        for check in P.service_checks(vip, name):
            def serves(check: P.NodeCheck = check) -> str | None:
                p = self.runner.run(node, check.argv, timeout=check.timeout)
                return check.judge(p.returncode, p.stdout + p.stderr)

            why = _poll(serves, self.options.vip_timeout, interval=1.0)
            if why is not None:
                raise InfraError(f"{check.name} on the management VIP {vip} does not answer "
                                 f"after {self.options.vip_timeout:.0f} s: {why}")

    def _checks_fail(self, doc: DeploymentDocument) -> str | None:
        node = doc.node.hostname
        name = P.check_name(doc, self.options.check_name)
        for check in P.node_checks(doc, name, self.runner.envrouter(),
                                   self.runner.agent_options(node)):
            def once(check: P.NodeCheck = check) -> str | None:
                p = self.runner.run(node, check.argv, timeout=check.timeout)
                return check.judge(p.returncode, p.stdout + p.stderr)

            why = _poll(once, self.options.check_timeout, interval=1.0)
            if why is not None:
                return f"check {check.name!r} failed: {why}"
        return None

    def _move(self, step: P.Step, old: DeploymentDocument, new: DeploymentDocument,
              progress: prog.Progress) -> None:
        node = new.node.hostname
        self._push(node, new)
        self._agent_apply(step, new, "host")
        why = self._checks_fail(new)
        if why is None:
            return
        # move it back to its old gateway, resolver and NTP servers
        self.reporter.note(f"{node}: {why}; moving it back")
        try:
            self._push(node, old)
            self._agent_apply(step, old, "host")
        except InfraError as exc:
            progress.nodes[node] = "move back FAILED"
            raise Stopped(step, f"{why}; moving it back failed too: {exc}") from exc
        progress.nodes[node] = P.MOVED_BACK
        raise Stopped(step, f"{why}; {node} moved back to gateway {old.host.gateway}")
