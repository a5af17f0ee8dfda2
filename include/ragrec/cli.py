"""The ``ragrec`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from ragrec.config import ElasticsearchSettings, LocalNodeSettings


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _es_command(args: argparse.Namespace) -> int:
    from ragrec.es_node import LocalNode

    settings = ElasticsearchSettings.from_env()
    node_settings = LocalNodeSettings.from_env()
    if args.port is not None:
        node_settings = replace(node_settings, port=args.port)
    if args.heap is not None:
        node_settings = replace(node_settings, heap=args.heap)
    node = LocalNode(node_settings, log=_log)

    if settings.is_external and args.action in ("start", "status"):
        from ragrec.es_client import connect

        info = connect(settings).info()
        _log(f"ES_URL is set: using the external cluster, no local node is {args.action}ed")
        print(json.dumps({"external": True, "url": settings.url,
                          "version": info["version"]["number"]}))
        return 0
    if args.action == "start":
        print(node.start())
        return 0
    if args.action == "stop":
        stopped = node.stop()
        _log("stopped" if stopped else "no local node was running")
        return 0
    status = node.status()
    print(json.dumps(status.__dict__))
    return 0 if status.running else 3


def _demo_command(args: argparse.Namespace) -> int:
    from ragrec import quickstart
    from ragrec.es_client import connect

    client = connect()
    indexed = quickstart.index_samples(client, args.index)
    version = client.info()["version"]["number"]
    _log(f"indexed {indexed} passages from the bundled samples into {args.index!r} "
         f"on Elasticsearch {version}")
    for query in args.query or quickstart.DEMO_QUERIES:
        print(quickstart.format_hits(query, quickstart.search(client, query, args.index, args.k)))
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    es = commands.add_parser("es", help="run the local Elasticsearch node")
    es.add_argument("action", choices=["start", "stop", "status"])
    es.add_argument("--port", type=int, default=None, help="HTTP port (default 9200 or free)")
    es.add_argument("--heap", default=None, help="JVM heap, at most 1g (default 512m)")
    es.set_defaults(handler=_es_command)

    demo = commands.add_parser("demo", help="index the bundled samples and print search hits")
    demo.add_argument("--index", default="ragrec-demo")
    demo.add_argument("--query", action="append", help="query to run (repeatable)")
    demo.add_argument("-k", type=int, default=3, help="hits per query")
    demo.set_defaults(handler=_demo_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as exc:  # one clear line for the operator, not a traceback
        from ragrec.es_client import ElasticsearchNotConfigured
        from ragrec.es_node.distribution import DistributionError
        from ragrec.es_node.java_runtime import JavaNotFound
        from ragrec.es_node.node import NodeError

        if isinstance(exc, ElasticsearchNotConfigured | NodeError | DistributionError
                      | JavaNotFound):
            _log(f"ragrec: error: {exc}")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
