"""STAND-IN for `storeagent agent serve`, used ONLY by the operator's status-timer test until the lead's agent
process can be driven into live calls there. SWAP POINT: tests/integration/conftest.py `agent_stats` fixture
starts this file; replace the command with `.venv/bin/storeagent agent serve --config ... --http-port ...`
(same flags are accepted here) once a real agent can be put into live calls by the test.

Serves the documented `GET /v1/stats` JSON (DESIGN.md / issue 4 contract) plus /healthz and /readyz, with
figures taken from the command line so the test can assert exactly what reaches the StoreAgent status.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("serve", nargs="?")
    p.add_argument("--config", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--esl-port", type=int, default=0)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--store", default="sunrise-bakery")
    p.add_argument("--calls-active", type=int, default=3)
    p.add_argument("--calls-total", type=int, default=41)
    p.add_argument("--p50", type=float, default=612.5)
    p.add_argument("--p95", type=float, default=987.0)
    a = p.parse_args()
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/v1/stats":
                body = {
                    "store": a.store, "ready": True, "draining": False,
                    "calls_active": a.calls_active, "calls_total": a.calls_total,
                    "calls_by_outcome": {"answered": a.calls_total},
                    "voice_to_voice_ms": {"p50": a.p50, "p95": a.p95, "count": 120},
                    "uptime_s": time.monotonic() - started,
                }
            elif self.path in ("/healthz", "/readyz"):
                body = {"ok": True}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer((a.host, a.http_port), Handler).serve_forever()


if __name__ == "__main__":
    main()
