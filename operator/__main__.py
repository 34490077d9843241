"""`storeagent operator run [...]`: the operator's composition root."""

from __future__ import annotations

import logging
import os
import sys

USAGE = "usage: storeagent operator run [--kubeconfig FILE] [options]  (run --help for all options)"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "run":
        print(USAGE, file=sys.stderr)
        return 2
    import kopf  # lazily: `storeagent --help` must work without the operator extra

    from storeagent.operator import handlers, settings

    s, ns = settings.parse(args[1:])
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ns.kubeconfig:
        os.environ["KUBECONFIG"] = ns.kubeconfig  # kopf's own login reads it
    registry = kopf.OperatorRegistry()
    handlers.register(registry, s, ns.kubeconfig)
    kopf.run(
        registry=registry,
        clusterwide=not s.namespaces,
        namespaces=list(s.namespaces),
        standalone=not s.peering_name,
        peering_name=s.peering_name or None,
        liveness_endpoint=s.liveness_endpoint or None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
