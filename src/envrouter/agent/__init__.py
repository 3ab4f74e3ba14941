"""The node agent: converge one node to its deployment document.

document -> desired state (desired.py, pure) -> plan(desired, observed) (plan.py, pure)
-> apply (apply.py, the only module that changes anything). observe.py reads the kernel.

This module is the API the HA layer and the CLI call; imports stay lazy so a no-op converge
does not pay for more than pyroute2 and the document model.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing: the OCF monitors import modules of this
# package (envrouter.agent.namespaces), which loads this one first (docs/ha.md, "Agent cost")
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal

    from envrouter.agent.plan import Step
    from envrouter.document import DeploymentDocument

    ScopeArg = Literal["all", "vrouter", "host"]


def load_document(path: str) -> DeploymentDocument:
    from envrouter.document import parse_document
    from envrouter.errors import ValidationError

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ValidationError("deployment document", "path", f"cannot read {path}: {exc}") from exc
    return parse_document(raw)


def run_pipeline(
    doc: DeploymentDocument | None,
    *,
    root: str = "/",
    scope: ScopeArg = "all",
    host_netns: str = "",
    teardown: bool = False,
    dry_run: bool = False,
    before_changes: Callable[[], None] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """document -> desired -> plan(desired, observed) -> apply: the one wiring of the agent.

    Returns the plan's steps (applied unless `dry_run`). `before_changes` runs once the plan is
    made (its preconditions checked) and before the first change; `on_step` after each step.
    Applying holds the agent lock; a dry run does not.
    """
    import contextlib

    from envrouter.agent.desired import desired_state, empty_like
    from envrouter.agent.netlink import Netlink
    from envrouter.agent.observe import observe
    from envrouter.agent.plan import plan

    _need_doc(doc)
    desired = desired_state(doc, root=root, scope=scope, host_netns=host_netns)
    if teardown:
        desired = empty_like(desired)
    with contextlib.nullcontext() if dry_run else agent_lock(), Netlink() as link:
        steps = plan(desired, observe(desired, link))  # refuses before anything changes
        if dry_run:
            return steps
        from envrouter.agent.apply import apply_step

        if before_changes is not None:
            before_changes()
        for step in steps:
            apply_step(step, link)
            if on_step is not None:
                on_step(step)
    return steps


def _need_doc(doc: object) -> None:
    from envrouter.errors import ValidationError

    if doc is None:
        raise ValidationError(
            "agent", "document", "no document given and none saved in the state directory"
        )


def lock_path() -> str:
    """The node's agent lock (ENVROUTER_AGENT_LOCK, default /run/envrouter/agent.lock); the
    directory beside it holds the agents' run-time records."""
    import os

    return os.environ.get("ENVROUTER_AGENT_LOCK", "/run/envrouter/agent.lock")


def agent_lock(path: str | None = None):
    """One converge/teardown at a time on a node (the OCF monitor and an operator's apply may
    meet): an exclusive flock, released by the kernel if the holder dies."""
    import contextlib
    import fcntl
    import os

    path = path or lock_path()

    @contextlib.contextmanager
    def held():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    return held()


def _run(
    doc: DeploymentDocument | None, *, root: str, scope: ScopeArg, host_netns: str, teardown: bool
) -> list[str]:
    steps = run_pipeline(doc, root=root, scope=scope, host_netns=host_netns, teardown=teardown)
    return [s.description for s in steps]


def converge(
    doc: DeploymentDocument, *, root: str = "/", scope: ScopeArg = "all", host_netns: str = ""
) -> list[str]:
    """Plan against the kernel and apply; returns the descriptions of the steps applied."""
    return _run(doc, root=root, scope=scope, host_netns=host_netns, teardown=False)


def check(
    doc: DeploymentDocument, *, root: str = "/", scope: ScopeArg = "all", host_netns: str = ""
) -> list[str]:
    """The steps a converge would apply now; [] means converged."""
    steps = run_pipeline(doc, root=root, scope=scope, host_netns=host_netns, dry_run=True)
    return [s.description for s in steps]


def teardown(
    doc: DeploymentDocument | None,
    *,
    root: str = "/",
    scope: ScopeArg = "all",
    host_netns: str = "",
) -> list[str]:
    """Remove everything the agent owns for this document and scope; nothing else."""
    if doc is None:
        return []  # nothing known to be ours: nothing to remove (idempotent stop)
    return _run(doc, root=root, scope=scope, host_netns=host_netns, teardown=True)
