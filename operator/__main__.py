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

    from storeagent.operator import handlers, settings, slimwatch

    s, ns = settings.parse(args[1:])
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ns.kubeconfig:
        os.environ["KUBECONFIG"] = ns.kubeconfig  # kopf's own login reads it
    _small_tls_read_buffers()
    slimwatch.install()  # managedFields off every watch event before kopf queues it (slimwatch.py)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, s, ns.kubeconfig)
    kopf.run(
        registry=registry,
        clusterwide=not s.namespaces,
        # The dialplan ConfigMaps live in FreeSWITCH's namespace: watched too (StoreAgents there are served
        # only when listed, see handlers.served).
        namespaces=sorted({*s.namespaces, s.freeswitch_namespace}) if s.namespaces else [],
        standalone=not s.peering_name,
        peering_name=s.peering_name or None,
        liveness_endpoint=s.liveness_endpoint or None,
    )
    return 0


def _small_tls_read_buffers() -> None:
    """asyncio gives every TLS connection a 256 KiB read buffer, zero-filled and so resident at once. kopf's
    client pools one connection per concurrent request (up to ~150 in a 1,000-shop burst: ~40 MB). A TLS
    record carries at most 16 KiB, so 32 KiB reads lose nothing."""
    import asyncio.sslproto

    if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > 32 * 1024:
        asyncio.sslproto.SSLProtocol.max_size = 32 * 1024


if __name__ == "__main__":
    raise SystemExit(main())
