"""`storeagent <component> ...`: one entry point for both deployables.

Each component is imported lazily so an image that installed only its own extra never imports the other.
"""

from __future__ import annotations

import sys

USAGE = """usage: storeagent <command> [args]

commands:
  agent serve [--config FILE]   run the agent service (ESL :8084, audio/metrics :8080)
  speech serve                  run the shared speech service (STT/TTS websockets :8090)
  operator run                  run the Kubernetes operator
  web serve|invite [...]        the shop owner's web page; invitation links
  demo [--manifest FILE]        call the example shop through the loopback, offline
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "agent":
        from storeagent.agent.__main__ import main as agent_main

        return agent_main(rest)
    if cmd == "operator":
        from storeagent.operator.__main__ import main as operator_main

        return operator_main(rest)
    if cmd == "web":
        from storeagent.web.__main__ import main as web_main

        return web_main(rest)
    if cmd == "speech":
        from storeagent.speech.__main__ import main as speech_main

        return speech_main(rest)
    if cmd == "demo":
        from storeagent.agent.loopback.demo import main as demo_main

        return demo_main(rest)
    print(f"storeagent: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
