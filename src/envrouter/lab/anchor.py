"""The anchor of a lab node: PID 1 of the node's private PID namespace.

Started as ``ip netns exec <netns> unshare --mount --uts --pid --fork --mount-proc
--propagation private python -m envrouter.lab.anchor NODE_DIR HOSTNAME``. It bind-mounts the
node's own directories over the shared paths, mounts a fresh /dev/shm, sets the hostname, writes
NODE_DIR/anchor.ready, then reaps orphans forever (every daemon that detaches ends up as its
child). Killing it with SIGKILL kills every process of the node: a power-off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from envrouter.lab.topology import NODE_SBIN, PRIVATE_DIRS


def _mount(argv: list[str]) -> None:
    subprocess.run(["mount", *argv], check=True)


def main(argv: list[str]) -> int:
    node_dir, hostname = argv
    for sub, target in PRIVATE_DIRS:
        source = os.path.join(node_dir, sub)
        if os.path.isdir(source):  # absent: shared with the machine (SHARED_WHEN_INSTALLED)
            _mount(["--bind", source, target])
    _mount(["-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs", "/dev/shm"])
    extra = os.path.join(node_dir, NODE_SBIN)
    if os.path.isdir(extra):
        # a read-only overlay: the node's own executables (the lab's fence agent) beside the
        # machine's, which stay as they are
        _mount(["-t", "overlay", "overlay", "-o", f"lowerdir={extra}:/usr/sbin", "/usr/sbin"])
    socket.sethostname(hostname)
    with open(os.path.join(node_dir, "anchor.ready"), "w") as f:
        f.write(f"{hostname}\n")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        try:
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            pass
        signal.sigtimedwait({signal.SIGCHLD}, 30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
