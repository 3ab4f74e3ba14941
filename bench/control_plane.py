#!/usr/bin/env python3
"""Control-plane benchmark (prints figures; not a test).

1. An environment of 1000 nodes (3 controllers) on a temporary SQLite file: time to allocate
   every address (one bulk transaction), reserve the VIPs, and build + serialise every node's
   deployment document.
2. `envrouter serve` as a subprocess on 127.0.0.1 and 50 concurrent keep-alive clients doing
   GET /api/v1/nodes/by-hostname/{hostname}/document over all hostnames: p50/p90/p99/max
   latency and throughput. The load generator is `wrk` (Debian package wrk, C, cheap on the
   CPU the server shares with it; a Lua script rotates the hostnames and sends the token);
   without wrk, a raw-socket asyncio HTTP/1.1 keep-alive client in this process (it costs the
   server CPU on a small machine, so its figures are pessimistic). wrk runs are bounded by
   time (--seconds), Python-client runs by count (--requests) and a 600 s timeout; traffic goes
   to 127.0.0.1 only.

Targets: all 1000 documents <= 1 s; p99 <= 25 ms.
Usage: .venv/bin/python bench/control_plane.py [--nodes 1000] [--clients 50]
       [--seconds 15] [--requests 20000 (Python client)] [--workers 1] [--tool auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import cpu_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(url: str, nodes: int) -> tuple[dict[str, float], str, list[str]]:
    from envrouter.db import migrate
    from envrouter.db.engine import Database
    from envrouter.model import service
    from envrouter.model.tokens import create_token

    migrate.upgrade(url)
    db = Database(url)
    figures: dict[str, float] = {}
    with db.writing() as s:
        env_id = service.create_environment(s, "bench", True).id
        for net in (
            {
                "name": "admin",
                "role": "admin",
                "cidr": "10.20.0.0/20",
                "gateway": "10.20.0.1",
                "ranges": [{"start": "10.20.0.10", "end": "10.20.15.250"}],
            },
            {
                "name": "management",
                "role": "management",
                "cidr": "192.168.0.0/20",
                "ranges": [{"start": "192.168.0.10", "end": "192.168.15.250"}],
            },
            {
                "name": "public",
                "role": "public",
                "cidr": "203.0.113.0/24",
                "gateway": "203.0.113.1",
                "ranges": [{"start": "203.0.113.10", "end": "203.0.113.100"}],
            },
            {
                "name": "storage",
                "role": "storage",
                "cidr": "192.168.16.0/20",
                "ranges": [{"start": "192.168.16.10", "end": "192.168.31.250"}],
            },
        ):
            service.create_network(s, env_id, net)
        service.put_settings(
            s,
            env_id,
            {"dns_list": ["198.51.100.53"], "ntp_list": ["198.51.100.123"], "enabled": True},
        )
        token = create_token(s, "bench", read_only=True)
    specs = [{"hostname": f"ctl{i + 1}", "roles": ["controller"]} for i in range(3)] + [
        {"hostname": f"cmp{i + 1}", "roles": ["compute"]} for i in range(nodes - 3)
    ]
    t0 = time.perf_counter()
    with db.writing() as s:
        service.create_nodes(s, env_id, specs)
    figures["allocate every address (bulk, 1 transaction)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.writing() as s:
        service.reserve_vips(s, env_id)
    figures["reserve the VIPs (+ namespace addresses)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.reading() as s:
        docs = service.environment_documents(s, env_id)
        blobs = [d.model_dump_json() for d in docs.values()]
    figures[f"build + serialise all {len(blobs)} documents"] = time.perf_counter() - t0
    assert docs["cmp1"].host.gateway_source == "vrouter"
    assert sum(1 for d in docs.values() if d.vrouter is not None) == 3
    # a second pass, warm
    t0 = time.perf_counter()
    with db.reading() as s:
        docs = service.environment_documents(s, env_id)
        blobs = [d.model_dump_json() for d in docs.values()]
    figures[f"build + serialise all {len(blobs)} documents (again)"] = time.perf_counter() - t0
    db.dispose()
    return figures, token, list(docs)


async def _client(port: int, token: str, paths: list[str], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            request = (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
    finally:
        writer.close()


async def load(
    port: int, token: str, hostnames: list[str], clients: int, requests: int, every: bool = False
):
    """`clients` keep-alive connections; random hostnames, or (every=True) each one once."""
    rng = random.Random(1)
    if every:
        names = list(hostnames)
    else:
        names = [rng.choice(hostnames) for _ in range(requests)]
    paths = [f"/api/v1/nodes/by-hostname/{h}/document" for h in names]
    latencies: list[float] = []
    t0 = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(_client(port, token, paths[i::clients], latencies) for i in range(clients))
        ),
        timeout=600,
    )
    return latencies, time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


_WRK_LUA = """
-- generated by bench/control_plane.py: rotate over the hostnames, send the token.
local hosts = {%(hosts)s}
local auth = "Bearer %(token)s"
local threads = {}
local n = 0

function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end

function request()
  n = n + 1
  local h = hosts[(offset + n * 613) %% #hosts + 1]
  return wrk.format("GET", "/api/v1/nodes/by-hostname/" .. h .. "/document",
                    {["Authorization"] = auth})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50": %%d, "p90": %%d, "p99": %%d, ' ..
    '"max": %%d, "mean": %%f, "errors": %%d, "bad_status": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def run_wrk(
    wrk: str, port: int, token: str, hostnames: list[str], clients: int, seconds: int, tmp: Path
) -> dict[str, float]:
    """Figures in seconds from one wrk run of `seconds` (2 threads, `clients` connections).
    wrk bounds a run by time only (its request count follows from the time)."""
    threads = min(2, clients)
    script = tmp / "bench.lua"
    script.write_text(_WRK_LUA % {"hosts": ",".join(f'"{h}"' for h in hostnames), "token": token})
    done = subprocess.run(
        [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(clients),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no figures:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.split(" ", 1)[1])
    if raw["errors"] or raw["bad_status"]:
        raise SystemExit(
            f"wrk: {raw['errors']} socket errors, {raw['bad_status']} non-200\n{done.stdout}"
        )
    return {
        "requests": raw["requests"],
        "elapsed": raw["duration_us"] / 1e6,
        **{k: raw[k] / 1e6 for k in ("p50", "p90", "p99", "max", "mean")},
    }


def run_python(
    port: int, token: str, hostnames: list[str], clients: int, requests: int
) -> dict[str, float]:
    latencies, elapsed = asyncio.run(load(port, token, hostnames, clients, requests))
    return {
        "requests": len(latencies),
        "elapsed": elapsed,
        **{k: pct(latencies, p) for k, p in (("p50", 50), ("p90", 90), ("p99", 99))},
        "max": max(latencies),
        "mean": statistics.mean(latencies),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20000, help="warm run size (Python client)")
    ap.add_argument("--seconds", type=int, default=15, help="warm run length (wrk)")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured wrk seconds first")
    ap.add_argument("--workers", type=int, default=1, help="envrouter serve --workers")
    ap.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    args = ap.parse_args()
    wrk = shutil.which("wrk") if args.tool in ("auto", "wrk") else None
    if args.tool == "wrk" and wrk is None:
        raise SystemExit("wrk not found (Debian package wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="ert-bench-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    proc = None
    try:
        nproc = len(os.sched_getaffinity(0))
        print(
            f"machine: nproc {nproc}, {cpu_model()}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}, load average at start "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)"
        )
        figures, token, hostnames = build(url, args.nodes)
        print(f"\n{args.nodes} nodes, 3 controllers, SQLite:")
        for name, seconds in figures.items():
            print(f"  {name:<52} {seconds * 1000:8.1f} ms")

        port = free_port()
        envrouter = Path(sys.executable).with_name("envrouter")
        cmd = [
            str(envrouter) if envrouter.exists() else "envrouter",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database-url",
            url,
            "--workers",
            str(args.workers),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"envrouter serve did not start: {proc.stderr.read().decode()}"
                    ) from None
                time.sleep(0.1)
        # cold: every document once (built on the server, then cached per revision)
        cold, cold_s = asyncio.run(load(port, token, hostnames, args.clients, 0, every=True))
        seq, _ = asyncio.run(load(port, token, hostnames, 1, 200))
        if wrk:
            tool = f"wrk ({wrk}, 2 threads, Lua script rotating over the hostnames)"
            # warm-up, not measured: with several server processes each one must build and
            # cache every document once (the cold pass above reached only one of them)
            run_wrk(wrk, port, token, hostnames, args.clients, args.warmup, tmp)
            warm = run_wrk(wrk, port, token, hostnames, args.clients, args.seconds, tmp)
        else:
            tool = "Python asyncio raw-socket client (same process as this script)"
            run_python(port, token, hostnames, args.clients, len(hostnames) * args.workers)
            warm = run_python(port, token, hostnames, args.clients, args.requests)
        print(
            f"\nGET /api/v1/nodes/by-hostname/{{hostname}}/document via `envrouter serve` "
            f"({args.workers} uvicorn process(es), SQLite, 127.0.0.1)"
        )
        print(
            f"  cold, Python client, {args.clients} clients, each of the {len(cold)} documents "
            f"once: p50 {pct(cold, 50) * 1000:.2f} ms, p99 {pct(cold, 99) * 1000:.2f} ms, "
            f"{len(cold) / cold_s:.0f} req/s"
        )
        print(
            f"  one client at a time, Python client, 200 requests: p50 "
            f"{pct(seq, 50) * 1000:.2f} ms, p99 {pct(seq, 99) * 1000:.2f} ms"
        )
        print(f"  warm run (after an unmeasured warm-up): load tool {tool}")
        print(
            f"    concurrency {args.clients} keep-alive connections, {warm['requests']} requests "
            f"in {warm['elapsed']:.2f} s"
        )
        print(
            "    "
            + "   ".join(f"{k} {warm[k] * 1000:.2f} ms" for k in ("p50", "p90", "p99", "max"))
            + f"   mean {warm['mean'] * 1000:.2f} ms"
            + f"   {warm['requests'] / warm['elapsed']:.0f} req/s"
        )
        docs_s = [v for k, v in figures.items() if k.startswith("build") and "again" not in k][0]
        p99 = warm["p99"]
        print(
            "\ntargets: all documents <= 1 s: "
            f"{'met' if docs_s <= 1 else 'NOT met'} ({docs_s:.3f} s); "
            f"GET document p99 <= 25 ms at {args.clients} clients: "
            f"{'met' if p99 <= 0.025 else 'NOT met'} ({p99 * 1000:.1f} ms)"
        )
        print(
            json.dumps(
                {
                    "nproc": nproc,
                    "tool": "wrk" if wrk else "python",
                    "workers": args.workers,
                    "clients": args.clients,
                    "requests": warm["requests"],
                    "documents_s": round(docs_s, 4),
                    **{f"{k}_ms": round(warm[k] * 1000, 2) for k in ("p50", "p90", "p99", "max")},
                    "req_per_s": round(warm["requests"] / warm["elapsed"]),
                }
            )
        )
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
