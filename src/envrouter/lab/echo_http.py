"""The lab's upstream HTTP server: answers every GET with the address the request came from,
so a check can show which source address the NAT gave a node's traffic."""

from __future__ import annotations

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps({"source": self.client_address[0], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"{self.client_address[0]} {format % args}", flush=True)


class ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=80)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer6 if ":" in args.bind else ThreadingHTTPServer
    server((args.bind, args.port), EchoHandler).serve_forever()


if __name__ == "__main__":
    main()
