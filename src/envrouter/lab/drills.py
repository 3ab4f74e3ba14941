"""Failover drills in the lab (effects): traffic flows from the compute nodes through the
vrouter's NAT to the upstream (`envrouter.lab.drill_traffic`) while a fault hits the VIP holder
(`envrouter.lab.faults`); then a report (`envrouter.lab.drill_report`, pure) and the lab is put
back and settled (`envrouter.lab.settle`). VIPs move in every drill but daemon-kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from envrouter.errors import InfraError, ValidationError
from envrouter.lab.cluster import best_view
from envrouter.lab.drill_report import DrillReport, add_timeline, analyse
from envrouter.lab.drill_traffic import Traffic
from envrouter.lab.faults import DEFAULT_HANG, FAULTS, make_fault
from envrouter.lab.nodes import Lab
from envrouter.lab.settle import current_holder, drill_vips, holders, wait_settled
from envrouter.lab.vip_samples import timeline
from envrouter.lab.vip_watch import VipWatch
from envrouter.lab.waiting import wait_for

DRILLS = FAULTS
EXPECT_MOVE = {"hard-kill": True, "standby": True, "partition": True, "daemon-kill": False,
               "upstream-link": True, "hang": True}
BASELINE = 1.5  # s of traffic before the fault
AFTER = 2.5  # s of traffic once every flow has resumed
RECOVERY_TIMEOUT = 40.0  # s for the VIPs to move and every flow to resume
POLL = 0.05


@dataclass
class DrillOptions:
    tcp_per_node: int = 3
    udp_per_node: int = 2
    restore: bool = True
    # scale (envrouter.lab.scale): idle connections before the fault, with churn and UDP flows
    connections: int = 0
    churn_rate: float | None = None  # new connections a second (default: load_report's)
    udp_flows: int | None = None  # load UDP flows per compute node
    # called with "start" (before the load), "loaded" (every idle connection established) and
    # "checked" (after the check): the bench samples the controllers' conntrackd there
    on_phase: Callable[[str], None] | None = None
    hang_seconds: float = DEFAULT_HANG


def run_drill(lab: Lab, drill: str, opts: DrillOptions | None = None,
              log: Callable[[str], None] = lambda s: None,
              plot: str | None = None) -> DrillReport:
    opts = opts or DrillOptions()
    if drill not in DRILLS:
        raise ValidationError("drill", "name", f"unknown drill {drill!r} (one of "
                              f"{', '.join(DRILLS)})")
    holder = current_holder(lab)
    view = best_view(lab)
    dc, fencing = view.dc, bool(view.stonith_enabled)
    fault = make_fault(lab, drill, holder, fencing, opts.hang_seconds)
    # under the upstream node's dir (the traffic server runs there): `lab down` removes it
    directory = os.path.join(lab.plan.node_dir("up"), "drills", f"{int(time.time())}-{drill}")
    shutil.rmtree(directory, ignore_errors=True)
    traffic = Traffic(lab, directory, opts.tcp_per_node, opts.udp_per_node)
    load = None
    if opts.connections:
        from envrouter.lab.scale import ConnectionLoad

        load = ConnectionLoad(lab, directory, opts.connections, churn_rate=opts.churn_rate,
                              udp_per_node=opts.udp_flows, log=log)
    log(f"{drill}: VIPs on {holder} (DC {dc}); starting traffic from "
        f"{', '.join(traffic.clients)}")
    expect_move = expected_move(drill, fencing)
    watch = VipWatch(lab, drill_vips(lab))
    notes: list[str] = []
    restored = injected = False
    load_result = None
    if load is not None:
        try:
            if opts.on_phase:
                opts.on_phase("start")
            load.start(holder)
            if opts.on_phase:
                opts.on_phase("loaded")
            load.start_churn()
        except BaseException:
            load.stop()
            raise
    t_start = time.time()
    traffic.start()
    try:
        watch.start()
        wait_for("traffic flowing before the fault", lambda: traffic.flowing(time.time() - 0.5),
                 timeout=30, interval=0.2)
        time.sleep(BASELINE)  # the baseline window of the measurement, not a wait
        t_start = time.time() - BASELINE
        if (now_holder := current_holder(lab)) != holder:
            # e.g. a loaded lab's holder losing its upstream ping while the load opened its
            # connections: the fault would not hit the holder, and nothing would be measured
            raise InfraError(f"the VIPs moved from {holder} to {now_holder} before the fault "
                             f"(while the traffic started): no {drill} drill of the holder; "
                             "the DC's pacemaker.log says why")
        log(f"{drill}: fault on {holder}")
        t_fault = time.time()
        injected = True
        fault.inject()
        moved = False
        judge_from = t_fault + fault.settle_after
        deadline = judge_from + RECOVERY_TIMEOUT
        while time.time() < deadline:
            now = watch.latest()
            sole = now.sole_holder() if now is not None else None
            moved = moved or (sole is not None and sole != holder)
            placed = sole is not None and (expect_move is None or (sole != holder) == expect_move)
            if time.time() >= judge_from and placed and traffic.flowing(judge_from + 0.2):
                break
            time.sleep(POLL)
        else:
            notes.append(f"traffic did not resume within {RECOVERY_TIMEOUT:.0f} s")
        if expect_move and not moved:
            notes.append("the VIPs were never seen on another single controller")
        time.sleep(AFTER)  # traffic after the recovery, measured
        if why := fault.check():
            notes.append(why)
        holders_after = holders(lab)
        t_end = time.time()  # the end of the measured window: the clients stop from here on
        samples = watch.stop()
        if load is not None:
            load_result = load.check(t_fault, holder).to_dict()
            if opts.on_phase:
                opts.on_phase("checked")
        server, clients, pings = traffic.stop()
        if opts.restore:
            log(f"{drill}: restoring {holder}")
            fault.restore()
            restored = True
    finally:
        watch.stop()
        if not restored:
            traffic.signal_stop()
            if load is not None:
                load.stop()
            if opts.restore and injected:
                with contextlib.suppress(Exception):
                    fault.restore()
    tl = timeline(samples, t_fault, holder, expect_move)
    report = analyse(drill, holder, dc, holders_after, expect_move, t_start, t_fault,
                     t_end, None if tl.first_seen_s is None else t_fault + tl.first_seen_s,
                     server, clients, pings, notes)
    add_timeline(report, tl, fencing)
    report.load = load_result
    with open(f"{directory}/report.json", "w") as f:
        json.dump(report.to_dict(), f, indent=2)
    from envrouter.lab.timeline import vip_rows, write_drill_timeline

    write_drill_timeline(directory, report.to_dict(), server, clients, pings, t_start, plot,
                         [os.path.join(lab.plan.node_dir(n.name), "log", "pacemaker",
                                       "pacemaker.log") for n in lab.plan.controllers],
                         vip_samples=vip_rows([(s.t, s.holders) for s in samples],
                                              t_fault))
    if opts.restore:
        log(f"{drill}: waiting for the lab to settle")
        wait_settled(lab)
    return report


def expected_move(drill: str, fencing: bool) -> bool | None:
    """True: the VIPs must end on another controller; False: on the same; None: either. A
    hung holder without fencing resumes beside the new holder, and Pacemaker then stops the
    VIPs on both and starts them on one of them: either one."""
    if drill == "hang" and not fencing:
        return None
    return EXPECT_MOVE[drill]


def run_drills(lab: Lab, names: list[str], opts: DrillOptions | None = None,
               log: Callable[[str], None] = lambda s: None,
               plot: str | None = None) -> list[DrillReport]:
    """`plot`: also write each drill's timeline there (`envrouter.lab.timeline.plot_path`)."""
    from envrouter.lab.timeline import plot_path

    reports = []
    wait_settled(lab)
    for name in names:
        reports.append(run_drill(lab, name, opts, log,
                                 plot and plot_path(plot, name, len(names) > 1)))
    return reports
