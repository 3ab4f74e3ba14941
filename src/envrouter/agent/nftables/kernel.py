"""nftables in the kernel: observe by JSON listing, load with check then one `nft -f`."""

from __future__ import annotations

import ctypes
import json
from typing import Any

from envrouter.agent.netlink import in_netns, run
from envrouter.agent.nftables.render import NftTableSpec, nft_load_text
from envrouter.errors import InfraError

NFT = "nft"
NFT_CTX_OUTPUT_JSON = 1 << 4
_lib: Any = None


def _libnftables() -> Any:
    """libnftables (the library behind the nft tool), or False when it cannot be loaded:
    running it in-process saves a process start per call."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libnftables.so.1")
        except OSError:
            _lib = False
            return _lib
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_set_dry_run.argtypes = [ctypes.c_void_p, ctypes.c_bool]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        _lib = lib
    return _lib


def nft(ns: str, text: str, *, json_out: bool = False, check_only: bool = False) -> str:
    """Run nft commands (text) in namespace ns: `nft [-j] [-c] -f -`. Returns the output."""
    lib = _libnftables()
    if not lib:
        argv = [NFT, *(["-j"] if json_out else []), *(["-c"] if check_only else []), "-f", "-"]
        return run(ns, argv, input=text).stdout

    def go() -> tuple[int, str, str]:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise InfraError("libnftables: cannot create a context")
        try:
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            if json_out:
                lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
            if check_only:
                lib.nft_ctx_set_dry_run(ctx, True)
            rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
            out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
            return rc, out, err
        finally:
            lib.nft_ctx_free(ctx)

    rc, out, err = in_netns(ns, go)
    if rc != 0:
        where = f" in namespace {ns!r}" if ns else ""
        lines = err.strip().splitlines()
        what = "check" if check_only else "load"
        raise InfraError(f"nft {what}{where} failed: {lines[0] if lines else rc}")
    return out


def observe_tables(ns: str, names: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """{(family, name): {"rules": ((chain, (rule comments...)), ...)}}
    for the tables among `names` present in namespace `ns` (one `nft -j list ruleset`)."""
    families = sorted({f for f, _ in names})
    out: dict[tuple[str, str], dict] = {}
    for family in families:
        text = nft(ns, f"list ruleset {family}", json_out=True)
        try:
            items = json.loads(text or '{"nftables": []}')["nftables"]
        except (ValueError, KeyError) as exc:
            raise InfraError(f"nft -j list ruleset: unreadable output: {exc}") from exc
        chains: dict[tuple[str, str], dict[str, list[str]]] = {}
        for item in items:
            if "table" in item:
                t = item["table"]
                key = (t["family"], t["name"])
                if key in names:
                    out[key] = {"rules": ()}
                    chains[key] = {}
            elif "chain" in item:
                c = item["chain"]
                key = (c["family"], c["table"])
                if key in chains:
                    chains[key].setdefault(c["name"], [])
            elif "rule" in item:
                r = item["rule"]
                key = (r["family"], r["table"])
                if key in chains:
                    chains[key].setdefault(r["chain"], []).append(r.get("comment", ""))
        for key, cs in chains.items():
            out[key]["rules"] = tuple(sorted((c, tuple(v)) for c, v in cs.items()))
    return out


def load_table(ns: str, spec: NftTableSpec, *, replace: bool = True) -> None:
    """Check (a dry run in the kernel) then load in one transaction. replace=False when the
    table was absent when observed (if it appeared meanwhile, the rules end up twice, which
    the next run sees in the fingerprint and replaces)."""
    text = nft_load_text(spec) if replace else spec.text
    nft(ns, text, check_only=True)
    nft(ns, text)


def delete_table(ns: str, family: str, name: str) -> None:
    # "table X" first makes the delete succeed whether or not it exists: no error text parsing
    nft(ns, f"table {family} {name}\ndelete table {family} {name}\n")
