"""`agent apply`'s no-op without the document model or pyroute2, as the vrouter monitor's.

An apply that found nothing to do records, beside the agent lock, what it observed: the
stamp of the kernel (envrouter.agent.stamp: every netlink dump, nftables generation, sysctl
and file the apply reads, taken *before* it observed) and what to stamp (a `Watch`, computed
from the document), under the stamp of its inputs (the options, the document file's identity,
the package's code, the saved copy of the document). The next apply with the same inputs
takes the kernel's stamp again, compares it byte for byte and, equal, knows that nothing it
would read changed since it found the node converged: "nothing to do: converged". The kernel
is observed every time (a drift changes the stamp and the full apply runs, and re-asserts);
what is skipped is parsing the document (pydantic), netlink through pyroute2 and the plan.
Any difference, a missing record, Open vSwitch bridges (their userspace ports are not in the
dumps), or an error: the full apply decides, and records again when it finds nothing to do.
"""

from __future__ import annotations

import os

from envrouter.agent import lock_path
from envrouter.agent.stamp import CHECKER, Watch, watch_for
from envrouter.ha.ocf_memo import inputs_stamp, memo_path, read_memo, write_memo

AGENT = "apply"


def _identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


class NoopRecord:
    """The record of one apply's inputs: `document` (a file), `root`, `scope` (as given),
    `host_netns`, and `saved` (the copy apply keeps: an apply that would write it is no
    no-op)."""

    def __init__(self, *, document: str, root: str, scope: str, host_netns: str,
                 saved: str) -> None:
        self.params = {"document": os.path.abspath(document), "root": root, "scope": scope,
                       "host_netns": host_netns, "saved": os.path.abspath(saved)}
        self.path = memo_path(os.path.dirname(lock_path()), AGENT, self.params)
        try:
            self.inputs: str | None = inputs_stamp(self.params, self.params["document"],
                                                   CHECKER)
        except OSError:
            self.inputs = None  # no document: the full apply says why
        self.kernel: bytes | None = None
        self.watch: Watch | None = None

    def _stamp(self) -> str | None:
        if self.inputs is None:
            return None
        return f"{self.inputs}\nsaved={_identity(self.params['saved'])}"

    def converged(self) -> bool:
        """Nothing the apply reads changed since an apply with these inputs found nothing to
        do (the kernel stamped now, compared with the one recorded then)."""
        recorded = read_memo(self.path, self._stamp(), Watch.FIELDS)
        if recorded is None:
            return False
        watch = Watch.parse(recorded)
        if watch.ovs:
            return False
        try:
            with open(self.path + ".kernel", "rb") as f:
                before = f.read()
            return watch.stamp() == before
        except OSError:
            return False

    def observing(self, doc, scope: str) -> None:  # doc: the parsed document
        """The full apply, about to observe: the kernel's stamp now (before it observes: a
        change while it runs shows at the next apply). `scope` is the resolved one."""
        self.watch = watch_for(doc, root=self.params["root"], scope=scope,
                               host_netns=self.params["host_netns"])
        try:
            self.kernel = None if self.watch.ovs else self.watch.stamp()
        except OSError:
            self.kernel = None  # no record then: the next apply observes in full again

    def done(self, steps: list) -> None:
        """The full apply's end: record it if it found nothing to do, else forget any record
        (the node changed: the next apply observes in full, and records)."""
        stamp = self._stamp()
        try:
            if steps or self.kernel is None or stamp is None or self.watch is None:
                os.unlink(self.path + ".kernel")
                return
            write_memo(self.path, stamp, self.watch.lines())
            tmp = f"{self.path}.kernel.{os.getpid()}"
            with open(tmp, "wb") as f:
                f.write(self.kernel)
            os.replace(tmp, self.path + ".kernel")
        except OSError:  # nothing recorded (or a record gone already): the next apply observes
            pass
