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
    from ragrec import quickstart, retrieval
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import make_embedder, tokenizer_dir_for
    from ragrec.es_client import connect
    from ragrec.sources import LocalSource
    from ragrec.sync import IngestOptions, Ingestor

    client = connect()
    embedder = make_embedder()
    ingestor = Ingestor(client, embedder, ModelTokenizer(tokenizer_dir_for(embedder)),
                        IngestOptions(show_progress=False))
    summary = ingestor.ingest(LocalSource(quickstart.samples_dir()), args.index)
    version = client.info()["version"]["number"]
    _log(f"ingested {summary.docs_seen} sample documents ({summary.docs_new} new, "
         f"{summary.docs_unchanged} unchanged) into {args.index!r} on Elasticsearch {version}")
    for query in args.query or quickstart.DEMO_QUERIES:
        hits = retrieval.search(client, args.index, query, "hybrid", args.k, embedder)
        print(quickstart.format_hits(query, hits))
        print()
    return 0


def _ingest_command(args: argparse.Namespace) -> int:
    from ragrec.chunking import ChunkSettings, ModelTokenizer
    from ragrec.embedding import make_embedder, tokenizer_dir_for
    from ragrec.es_client import connect
    from ragrec.indexing.mapping import VectorSettings
    from ragrec.parsing import ParseSettings
    from ragrec.sources import open_source
    from ragrec.sync import IngestOptions, Ingestor

    source = open_source(args.source)
    embedder = make_embedder(args.embed_url, backend=args.backend)
    options = IngestOptions(
        full=args.full,
        keep_versions=args.keep,
        parse=ParseSettings(max_bytes=int(args.max_file_mb * 1024 * 1024),
                            pdf_strategy=args.pdf_strategy),
        chunking=ChunkSettings(size=args.chunk_size, overlap=args.chunk_overlap),
        vectors=VectorSettings(int8=args.int8),
        show_progress=not args.quiet,
    )
    ingestor = Ingestor(connect(), embedder, ModelTokenizer(tokenizer_dir_for(embedder)), options)
    summary = ingestor.ingest(source, args.index)
    report = summary.to_dict()
    if args.json:
        print(json.dumps(report))
    else:
        quarantined = report.pop("quarantined")
        print(json.dumps(report, indent=2))
        for record in quarantined:
            _log(f"quarantined {record['doc_id']}: {record['reason']} ({record['detail']})")
    return 0


def _search_command(args: argparse.Namespace) -> int:
    from ragrec import retrieval
    from ragrec.embedding import make_embedder
    from ragrec.es_client import connect

    embedder = None if args.mode == "bm25" else make_embedder(args.embed_url,
                                                                backend=args.backend)
    hits = retrieval.search(connect(), args.index, args.query, args.mode, args.k, embedder)
    if args.json:
        print(json.dumps([hit.__dict__ for hit in hits]))
        return 0
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.doc_id}#{hit.chunk_no}" + (f" p.{hit.page}" if hit.page else "")
        print(f"{rank:2d}. {hit.score:.4f}  {where}  {hit.title[:60]}")
        print(f"    {' '.join(hit.text.split())[:200]}")
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
    demo.add_argument("--index", default="ragrec-demo", help="read alias to (re)build")
    demo.add_argument("--query", action="append", help="query to run (repeatable)")
    demo.add_argument("-k", type=int, default=3, help="hits per query")
    demo.set_defaults(handler=_demo_command)

    ingest = commands.add_parser("ingest", help="sync a source into an index (incremental)")
    ingest.add_argument("source", help="file:///dir, a local path, or oss://bucket/prefix")
    ingest.add_argument("--index", required=True, help="read alias of the index")
    ingest.add_argument("--full", action="store_true", help="rebuild a new index version")
    ingest.add_argument("--embed-url", default=None,
                        help="EAS (.../api/predict/SERVICE) or OpenAI-compatible endpoint; "
                             "default: the model in process")
    ingest.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None,
                        help="in-process encoder runtime (default: RAGREC_ENCODER_BACKEND "
                             "or torch)")
    ingest.add_argument("--json", action="store_true", help="one-line JSON summary")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
    ingest.add_argument("--chunk-size", type=int, default=512, help="cl100k tokens")
    ingest.add_argument("--chunk-overlap", type=int, default=64, help="cl100k tokens")
    ingest.add_argument("--max-file-mb", type=float, default=100.0)
    ingest.add_argument("--pdf-strategy", default="fast", choices=["fast", "ocr_only", "hi_res"])
    ingest.add_argument("--int8", action="store_true", help="int8-quantised HNSW")
    ingest.add_argument("--keep", type=int, default=2, help="index versions to keep")
    ingest.set_defaults(handler=_ingest_command)

    search = commands.add_parser("search", help="query an index")
    search.add_argument("query")
    search.add_argument("--index", required=True)
    search.add_argument("--mode", choices=["bm25", "dense", "hybrid"], default="hybrid")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--embed-url", default=None)
    search.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None)
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=_search_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as exc:  # one clear line for the operator, not a traceback
        from ragrec.embedding.base import EmbeddingError
        from ragrec.es_client import ElasticsearchNotConfigured
        from ragrec.es_node.distribution import DistributionError
        from ragrec.es_node.java_runtime import JavaNotFound
        from ragrec.es_node.node import NodeError
        from ragrec.indexing.versions import IndexVersionError
        from ragrec.retrieval import EncoderMismatch
        from ragrec.sources.base import SourceError
        from ragrec.sync import IngestError

        if isinstance(exc, ElasticsearchNotConfigured | NodeError | DistributionError
                      | JavaNotFound | SourceError | IngestError | EmbeddingError
                      | EncoderMismatch | IndexVersionError):
            _log(f"ragrec: error: {exc}")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
