"""FreeSWITCH's inbound event socket as far as the operator uses it: `auth`, `api reloadxml`, `exit`.

FreeSWITCH cannot be installed on these machines; this plays its side of the documented inbound ESL exchange
(auth/request -> command/reply -> api/response with Content-Length) and records every command.
"""

from __future__ import annotations

import socketserver
import threading


class FakeFreeSwitchEsl:
    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        self.commands: list[str] = []
        self.fail_reload = False
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(b"Content-Type: auth/request\n\n")
                while True:
                    lines = []
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            return
                        if line in (b"\n", b"\r\n"):
                            break
                        lines.append(line.decode().strip())
                    if not lines:
                        continue
                    cmd = lines[0]
                    with outer._lock:
                        outer.commands.append(cmd)
                    if cmd.startswith("auth "):
                        ok = cmd[5:] == outer.password
                        text = "+OK accepted" if ok else "-ERR invalid"
                        self.wfile.write(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())
                        if not ok:
                            return
                    elif cmd.startswith("api "):
                        body = b"-ERR reload failed\n" if outer.fail_reload else b"+OK [Success]\n"
                        self.wfile.write(b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body)
                    elif cmd == "exit":
                        self.wfile.write(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
                        return
                    else:
                        self.wfile.write(b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def reloads(self) -> int:
        with self._lock:
            return sum(1 for c in self.commands if c == "api reloadxml")

    def __enter__(self) -> FakeFreeSwitchEsl:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
