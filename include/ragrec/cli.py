"""The ``ragrec`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from ragrec.config import ElasticsearchSettings, LocalNodeSettings, TrainingDeviceSettings
from ragrec.models.budget import DEFAULT_MAX_MINUTES
from ragrec.models.train_settings import KIND_DEFAULTS


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _es_command(args: argparse.Namespace) -> int:
    from ragrec.dev.es_node import LocalNode

    settings = ElasticsearchSettings.from_env()
    node_settings = LocalNodeSettings.from_env()
    if args.port is not None:
        node_settings = replace(node_settings, port=args.port)
    if args.heap is not None:
        node_settings = replace(node_settings, heap=args.heap)
    if args.nodes is not None:
        node_settings = replace(node_settings, nodes=args.nodes)
    node = LocalNode(node_settings, log=_log)

    if settings.is_external and args.action in ("start", "status"):
        from ragrec.es_client import connect

        info = connect(settings).info()
        _log(f"ES_URL is set: using the external cluster, no local node is {args.action}ed")
        print(json.dumps({"external": True, "url": settings.url,
                          "version": info["version"]["number"]}))
        return 0
    if args.action == "start":
        print(node.start() if args.node is None else node.start_member(args.node))
        return 0
    if args.action == "stop":
        stopped = node.stop() if args.node is None else node.stop_member(args.node)
        _log("stopped" if stopped else "no local node was running")
        return 0
    status = node.status()
    print(json.dumps(status.__dict__))
    return 0 if status.running else 3


def _demo_command(args: argparse.Namespace) -> int:
    from ragrec.config import ModelEndpointSettings, cache_dir
    from ragrec.dev import quickstart
    from ragrec.es_client import connect
    from ragrec.retrieval import Searcher
    from ragrec.sources.samples import chinese_samples_dir

    if args.stop_ui:
        _log("stopped the Airflow UI" if quickstart.stop_ui() else "no Airflow UI was running")
        return 0
    client = connect()
    version = client.info()["version"]["number"]
    log_path = cache_dir() / "demo" / "kb_ingest.log"
    chinese = args.language == "zh"
    index = args.index or ("ragrec-demo-zh" if chinese else "ragrec-demo")
    _log(f"running the kb_ingest DAG (Airflow dag.test) on the bundled "
         f"{'Chinese ' if chinese else ''}samples; log: {log_path}")
    if chinese and not ModelEndpointSettings.from_env().base_model:
        _log("note: the base encoder is the bundled English MiniLM; for Chinese set "
             "RAGREC_BASE_MODEL=bge-small-zh-v15-q (`ragrec models bases`)")
    try:
        outcome = quickstart.run_kb_ingest(
            index, log_path, chinese_samples_dir() if chinese else None,
            args.language or "")
    except quickstart.DemoError as exc:
        _log(f"error: {exc}")
        return 1
    summary = outcome["published"]
    tasks = ", ".join(f"{task} {'/'.join(sorted(set(states)))}"
                      for task, states in outcome["tasks"].items())
    _log(f"kb_ingest {outcome['state']} ({tasks})")
    _log(f"ingested {summary['docs_seen']} sample documents ({summary['docs_new']} new, "
         f"{summary['docs_unchanged']} unchanged) into {index!r} on Elasticsearch "
         f"{version}, model {summary['model_version']}")
    searcher = Searcher(client, query_models())  # the index's own model version
    for query in args.query or (quickstart.DEMO_QUERIES_ZH if chinese
                                else quickstart.DEMO_QUERIES):
        ranking = searcher.search(index, query, k=args.k)
        print(quickstart.format_hits(query, ranking.hits))
        print()
    _log(f"search and ask these documents in a browser: `source scripts/env.sh && ragrec "
         f"serve-api --index {index}`, then open http://127.0.0.1:8080/")
    if args.ui:
        try:
            url = quickstart.start_ui()
        except quickstart.DemoError as exc:
            _log(f"error: {exc}")
            return 1
        _log(f"the Airflow UI (DAGs, their Params forms, this run) is at {url} - no login, "
             f"127.0.0.1 only; stop it with `ragrec demo --stop-ui`")
    return 0


def _ingest_command(args: argparse.Namespace) -> int:
    from ragrec.chunking import ChunkSettings, ModelTokenizer
    from ragrec.config import IndexLayoutSettings
    from ragrec.embedding import make_embedder, tokenizer_dir_for
    from ragrec.es_client import connect
    from ragrec.indexing.mapping import VectorSettings
    from ragrec.parsing import ParseSettings
    from ragrec.sources import open_source
    from ragrec.sync import IngestError, IngestOptions, Ingestor

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
        reuse_vectors=not args.reencode,
        language=args.language or IndexLayoutSettings.from_env().language,
    )
    ingestor = Ingestor(connect(), embedder, ModelTokenizer(tokenizer_dir_for(embedder)), options)
    try:
        report = {"status": "ok", **ingestor.ingest(source, args.index).to_dict()}
    except IngestError as exc:
        if exc.summary is not None:  # what was done before it failed, then the error
            _print_summary({"status": "failed", "error": str(exc), **exc.summary.to_dict()},
                           args.json)
        raise
    _print_summary(report, args.json)
    return 0


def _print_summary(report: dict, one_line: bool) -> None:
    if one_line:
        print(json.dumps(report))
        return
    quarantined = report.pop("quarantined")
    print(json.dumps(report, indent=2))
    for record in quarantined:
        _log(f"quarantined {record['doc_id']}: {record['reason']} ({record['detail']})")


def query_models(embed_url: str | None = None, backend: str | None = None):
    """The model resolver ``ragrec search`` and ``serve-api`` rank with: the endpoint
    (``--embed-url`` / RAGREC_EMBED_URL) when it serves the index's version, else that
    version in process (the base model or the registry's)."""
    from ragrec.config import ModelEndpointSettings, RegistrySettings
    from ragrec.models.resolver import ModelResolver, interactive_endpoint

    settings = ModelEndpointSettings.from_env()
    url = embed_url or settings.url
    endpoint = interactive_endpoint(url, settings.token) if url else None
    return ModelResolver(endpoint, RegistrySettings.from_env(), backend=backend)


def _search_command(args: argparse.Namespace) -> int:
    from ragrec.es_client import connect
    from ragrec.retrieval import Searcher

    searcher = Searcher(connect(), query_models(args.embed_url, args.backend))
    version, served = searcher.served(args.index)
    spec = served.overridden(args.mode, args.fusion, args.dense_weight, args.depth,
                             args.rerank, args.rerank_top, args.rerank_weight)
    ranking = searcher.search(args.index, args.query, spec, args.k, version=version)
    if args.json:
        print(json.dumps(ranking.to_dict()))
        return 0
    _log(f"{spec.label} {json.dumps(spec.to_dict())}, model {version}")
    for rank, hit in enumerate(ranking.hits, start=1):
        where = f"{hit.doc_id}#{hit.chunk_no}" + (f" p.{hit.page}" if hit.page else "")
        print(f"{rank:2d}. {hit.score:.4f}  {where}  {hit.title[:60]}")
        print(f"    {' '.join(hit.text.split())[:200]}")
    return 0


def _serve_model_command(args: argparse.Namespace) -> int:
    import uvicorn

    from ragrec.config import RegistrySettings, ServeModelSettings
    from ragrec.serving.app import ServerConfig, create_app
    from ragrec.serving.loaded_model import LoadedModel

    model = LoadedModel.from_uri(args.model, args.backend)
    model.warm_up()
    tokens = ServeModelSettings.from_env()
    config = ServerConfig(service=args.service, token=tokens.token,
                          admin_token=tokens.admin_token, registry=RegistrySettings.from_env(),
                          max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    _log(f"serving {model.info.name} {model.info.version} ({model.info.dims}-d, "
         f"{model.info.backend}, reranker: {model.info.reranker}) on "
         f"http://{args.host}:{args.port}/api/predict/{args.service} and /v1")
    uvicorn.run(create_app(model, config), host=args.host, port=args.port,
                log_level="warning", access_log=False)
    return 0


def _serve_api_command(args: argparse.Namespace) -> int:

    import uvicorn

    from ragrec.api.app import create_app
    from ragrec.config import ApiSettings
    from ragrec.es_client import connect

    config = ApiSettings.from_env(index=args.index)
    app = create_app(connect(), query_models(), config)
    _log(f"serving the search API for {config.index!r} on http://{args.host}:{args.port}/ "
         f"(answers: {config.llm.model if config.llm else 'extractive'}, "
         f"auth: {'token' if config.token else 'OFF'})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _events_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ragrec.es_client import connect
    from ragrec.recs.events import export_training_pairs

    count = export_training_pairs(connect(), args.index, Path(args.out))
    _log(f"wrote {count} labelled (query, document) pairs to {args.out}")
    return 0


def _recs_command(args: argparse.Namespace) -> int:
    from ragrec.es_client import connect
    from ragrec.recs.training import NoEvents, learn
    from ragrec.recs.tuning import DEFAULT_TUNING

    try:  # learn syncs the feature table first, as the DAGs do
        report = learn(connect(), args.index, tuning=None if args.no_tune else DEFAULT_TUNING)
    except NoEvents as exc:
        _log(f"ragrec: nothing learned: {exc}")
        return 3
    print(json.dumps(report))
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ragrec.es_client import connect
    from ragrec.eval import runner
    from ragrec.eval.datasets import BeirDataset
    from ragrec.eval.report import write_report

    modes = runner.MODES if not args.mode or "all" in args.mode else tuple(args.mode)
    if args.events and not args.dataset:
        return _eval_traffic(args, modes)
    if not args.dataset:
        raise runner.EvalError("ragrec eval needs --dataset (judged queries) or --events "
                               "ALIAS (held-out traffic)")
    dataset = BeirDataset(Path(args.dataset))
    if not (dataset.root / "corpus.jsonl").is_file():
        raise runner.EvalError(f"{dataset.root} is not a BEIR dataset (no corpus.jsonl)")
    args.index = args.index or f"ragrec-eval-{dataset.root.resolve().name.lower()}"
    if args.target == "answers":
        return _eval_answers(args, dataset)
    if args.reranker and len(args.reranker) > 1:
        raise runner.EvalError("retrieval evaluation takes one --reranker")
    dataset.queries(), dataset.qrels(args.split)  # a malformed dataset fails before indexing
    settings = runner.EvalSettings(split=args.split, tune_queries=args.tune_queries,
                                   rerank_top=args.rerank_top, depth=args.depth)
    report = runner.evaluate_model(connect(), dataset, args.index, args.model,
                                   args.reranker[0] if args.reranker else None, modes,
                                   settings, args.backend, show_progress=not args.json)
    reranker_version = report.get("reranker_version")
    if args.events:  # both where both exist: the judged figures and the traffic's
        report["traffic"] = _traffic_report(args, ("served", *modes))
    json_path, html_path = write_report(report, Path(args.report_dir))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'mode':<15} {'nDCG@10':>8} {'R@100':>8} {'MRR@10':>8}   "
          f"model {report['model_version']}"
          + (f", reranker {reranker_version}" if reranker_version else ""))
    for mode, metric in report["metrics"].items():
        print(f"{mode:<15} {metric['ndcg@10']:8.4f} {metric['recall@100']:8.4f} "
              f"{metric['mrr@10']:8.4f}")
    if args.events:
        _print_traffic(report["traffic"])
    _log(f"report: {json_path} and {html_path}")
    return 0


def _traffic_report(args: argparse.Namespace, modes) -> dict:
    from ragrec.es_client import connect
    from ragrec.eval import runner, traffic

    settings = runner.EvalSettings(rerank_top=args.rerank_top, depth=args.depth)
    return traffic.evaluate_traffic(connect(), args.index, args.events, args.model, modes,
                                    settings, args.holdout, args.backend)


def _eval_traffic(args: argparse.Namespace, modes) -> int:
    """``ragrec eval --events ALIAS`` without a dataset: held-out traffic only."""
    args.index = args.index or args.events
    report = _traffic_report(args, ("served", *modes))
    if args.json:
        print(json.dumps(report))
    else:
        _print_traffic(report)
    return 0


def _print_traffic(report: dict) -> None:
    print(f"held-out traffic of {report['events']}: {report['held_out_queries']} queries, "
          f"model {report['model_version']} on {report['index']}")
    print(f"{'mode':<15} {'nDCG@10':>8}   95% interval (counterfactual, clicks)")
    for mode, metric in report["metrics"].items():
        low, high = metric["ci95"]
        print(f"{mode:<15} {metric['ndcg@10']:8.4f}   [{low:.4f}, {high:.4f}]")


def _eval_answers(args: argparse.Namespace, dataset) -> int:
    from pathlib import Path

    from ragrec.answers.answerer import Answerer
    from ragrec.config import ApiSettings, LlmSettings, cache_dir
    from ragrec.embedding import encoder_for
    from ragrec.es_client import connect
    from ragrec.eval import answers, runner
    from ragrec.models.reranker import load_cross_encoder
    from ragrec.models.uris import load_layout
    from ragrec.retrieval import PinnedModels, Searcher

    rationales = answers.gold_of(dataset, Path(args.rationales) if args.rationales else None)
    rationales.claims(args.split)  # a bad gold folder fails before any indexing
    llm = None
    if args.answer_mode == "llm":
        llm = LlmSettings.from_env()
        if llm is None:
            raise runner.EvalError("--answer-mode llm needs RAGREC_LLM_URL (an "
                                   "OpenAI-compatible server)")
    layout = load_layout(args.model)
    embedder = encoder_for(layout.embedder_dir, args.backend)
    queries = encoder_for(layout.query_encoder_dir, args.backend) if layout.query_encoder_dir \
        else None
    client = connect()
    summary = runner.ensure_index(client, args.index, dataset, embedder, layout.embedder_dir,
                                  cache_dir(), show_progress=not args.json)
    _log(f"index {args.index}: {summary.docs_seen} documents ({summary.model_version})")
    min_support = ApiSettings.from_env().min_support
    first = (f"{layout.version} + LLM {llm.model}" if llm
             else f"{layout.version} (cosine selector)")
    systems = [answers.System(first, Answerer(
        Searcher(client, PinnedModels(embedder, query_embedder=queries)), min_support, llm))]
    for uri in args.reranker or ([args.model] if layout.reranker_dir else []):
        rerank_layout = load_layout(uri)
        if rerank_layout.reranker_dir is None:
            raise runner.EvalError(f"model {rerank_layout.version} has no reranker")
        searcher = Searcher(client, PinnedModels(embedder, load_cross_encoder(
            rerank_layout.reranker_dir), queries))
        version, served = searcher.served(args.index)
        label = f"{layout.version} + {rerank_layout.version}" + (
            " (selector only)" if args.no_rerank else "")
        systems.append(answers.System(label, Answerer(searcher, min_support, llm),
                                      served.overridden(rerank=not args.no_rerank)))
    qrels = dataset.qrels("train") if (dataset.root / "qrels" / "train.tsv").is_file() else {}
    report = answers.evaluate(systems, args.index, rationales, args.split,
                              0 if llm else args.tune_claims, k=5,
                              show_progress=not args.json, train_ids=list(qrels) or None,
                              limit=args.limit)
    json_path, html_path = answers.write_answer_report(report, Path(args.report_dir))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"protocol: {report['protocol']}")
    print(f"{'system':<58}{answers.summary_heading(report['gold'])}")
    for label, entry in report["systems"].items():
        print(f"{label[:58]:<58}{answers.summary_cells(entry['metrics'], report['gold'])}")
    _log(f"report: {json_path} and {html_path}")
    return 0


def _train_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ragrec.models.train_job import TrainJob, run
    from ragrec.models.train_settings import NEGATIVES, settings_for

    out = Path(args.out.removeprefix("file://"))
    settings = settings_for(args.kind, epochs=args.epochs or None, seed=args.seed,
                            learning_rate=args.lr or None, precision=args.precision,
                            batch_size=args.batch_size or None, max_steps=args.max_steps,
                            max_minutes=args.max_minutes or None)
    job = TrainJob(kind=args.kind, dataset=Path(args.dataset) if args.dataset else None,
                   base=args.base, out=out, index=args.index, split=args.split,
                   clicks=Path(args.clicks) if args.clicks else None,
                   events=args.events, correction=args.correction,
                   rationales=Path(args.rationales) if args.rationales else None,
                   negatives=args.negatives if args.negatives is not None
                   else NEGATIVES[args.kind],
                   holdout=args.holdout, eval_split=None if args.no_eval else args.eval_split,
                   name=args.name, settings=settings)
    card = run(job)
    summary = {"version": card["version"], "out": str(out), "kind": args.kind,
               "seconds": card["seconds"], **card["training"][args.kind]}
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0


def _bases_command(args: argparse.Namespace) -> int:
    """``ragrec models bases`` and ``ragrec models install-base NAME [--jar PATH]``."""
    from ragrec.embedding import bases

    if args.action == "install-base":
        if not args.target:
            raise bases.BaseModelError("ragrec models install-base NAME [--jar PATH]: "
                                       "`ragrec models bases` lists the names")
        folder = bases.install(args.target, args.jar, log=_log)
        print(json.dumps({"base": args.target, "model_dir": str(folder),
                          "uri": f"base:{args.target}"}))
        return 0
    rows = bases.listing()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    print(f"{'name':<20} {'model':<32} {'dims':>4} {'pool':<4} {'prec':<4} {'langs':<5} "
          f"installed  licence")
    for row in rows:
        print(f"{row['name']:<20} {row['model'][:32]:<32} {row['dims']:>4} "
              f"{row['pooling']:<4} {row['precision']:<4} {','.join(row['languages']):<5} "
              f"{'yes' if row['installed'] else 'no':<10} {row['licence']}")
    return 0


def _models_command(args: argparse.Namespace) -> int:
    from ragrec.config import RegistrySettings
    from ragrec.models.registry import RegistryError, open_registry

    if args.action in ("bases", "install-base"):
        return _bases_command(args)
    if args.action != "list" and not args.target:
        raise RegistryError(f"ragrec models {args.action} needs a "
                            f"{'model URI' if args.action == 'register' else 'model name'}")
    if args.action == "promote" and not args.version:
        raise RegistryError("ragrec models promote NAME VERSION [--stage production]")
    settings = RegistrySettings.from_env()
    registry = open_registry(replace(settings, root=args.registry or settings.root))
    if args.action == "list":
        names = [args.name] if args.name else registry.names()
        rows = []
        for name in names:
            data = registry.show(name)
            stages = {v: s for s, v in data["stages"].items()}
            for version, entry in sorted(data["versions"].items(),
                                         key=lambda item: item[1]["registered_at"]):
                rows.append({"name": name, "version": version, "stage": stages.get(version),
                             "registered_at": entry["registered_at"],
                             "reranker": entry["reranker"], "uri": entry["uri"],
                             "metrics": entry["metrics"]})
        if args.json:
            print(json.dumps(rows))
        else:
            for row in rows:
                print(f"{row['name']:<20} {row['version']:<40} {row['stage'] or '-':<11} "
                      f"{row['registered_at']}  reranker={row['reranker']}")
        return 0
    if args.action == "register":
        entry = registry.register(args.target, stage=None if args.no_stage else args.stage
                                  or "candidate")
        print(json.dumps(entry))
        return 0
    if args.action == "promote":
        data = registry.promote(args.target, args.version, args.stage or "production")
    else:
        data = registry.rollback(args.target, args.stage or "production")
    print(json.dumps({"name": args.target, "stages": data["stages"]}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    es = commands.add_parser("es", help="run the local Elasticsearch node (or cluster)")
    es.add_argument("action", choices=["start", "stop", "status"])
    es.add_argument("--port", type=int, default=None,
                    help="HTTP port of the first node (default 9200 or free)")
    es.add_argument("--heap", default=None,
                    help="JVM heap of each node, at most 1g (default 512m)")
    es.add_argument("--nodes", type=int, default=None,
                    help="nodes forming one cluster (default RAGREC_ES_NODES or 1)")
    es.add_argument("--node", type=int, default=None, metavar="I",
                    help="start or stop only member I (0-based) of the running cluster")
    es.set_defaults(handler=_es_command)

    demo = commands.add_parser("demo", help="index the bundled samples and print search hits")
    demo.add_argument("--index", default=None,
                      help="read alias to (re)build (default ragrec-demo, or ragrec-demo-zh "
                           "with --language zh)")
    demo.add_argument("--query", action="append", help="query to run (repeatable)")
    demo.add_argument("-k", type=int, default=3, help="hits per query")
    demo.add_argument("--language", choices=["en", "zh"], default=None,
                      help="zh: the bundled Chinese samples into a Chinese index (cjk "
                           "analyzer); best with RAGREC_BASE_MODEL=bge-small-zh-v15-q")
    demo.add_argument("--ui", action="store_true",
                      help="then start the Airflow UI over the demo's Airflow home")
    demo.add_argument("--stop-ui", action="store_true", help="stop that UI and exit")
    demo.set_defaults(handler=_demo_command)

    ingest = commands.add_parser("ingest", help="sync a source into an index (incremental)")
    ingest.add_argument("source", help="file:///dir, a local path, or oss://bucket/prefix")
    ingest.add_argument("--index", required=True, help="read alias of the index")
    ingest.add_argument("--full", action="store_true", help="rebuild a new index version")
    ingest.add_argument("--reencode", action="store_true",
                        help="encode every chunk again instead of reusing the vectors the "
                             "index holds for unchanged chunk text (same model only)")
    ingest.add_argument("--embed-url", default=None,
                        help="EAS (.../api/predict/SERVICE) or OpenAI-compatible endpoint; "
                             "default: the model in process")
    ingest.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None,
                        help="in-process encoder runtime (default: RAGREC_ENCODER_BACKEND "
                             "or onnx, the float32 graph of the same model)")
    ingest.add_argument("--json", action="store_true", help="one-line JSON summary")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
    ingest.add_argument("--chunk-size", type=int, default=512, help="cl100k tokens")
    ingest.add_argument("--chunk-overlap", type=int, default=64, help="cl100k tokens")
    ingest.add_argument("--max-file-mb", type=float, default=100.0)
    ingest.add_argument("--pdf-strategy", default="fast", choices=["fast", "ocr_only", "hi_res"])
    ingest.add_argument("--int8", action="store_true", help="int8-quantised HNSW")
    ingest.add_argument("--keep", type=int, default=2, help="index versions to keep")
    ingest.add_argument("--language", choices=["en", "zh", "auto"], default=None,
                        help="what BM25 reads the text as: en (english analyzer), zh (cjk "
                             "bigrams), auto (the base encoder's language); default "
                             "RAGREC_LANGUAGE, else the live index's, else auto")
    ingest.set_defaults(handler=_ingest_command)

    search = commands.add_parser("search", help="query an index")
    search.add_argument("query")
    search.add_argument("--index", required=True)
    search.add_argument("--mode", choices=["bm25", "dense", "hybrid"], default=None,
                        help="default: the spec the index serves (as the API)")
    search.add_argument("--fusion", choices=["rrf", "convex"], default=None)
    search.add_argument("--dense-weight", type=float, default=None)
    search.add_argument("--depth", type=int, default=None, help="chunks per leg")
    search.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None)
    search.add_argument("--rerank-top", type=int, default=None)
    search.add_argument("--rerank-weight", type=float, default=None)
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--embed-url", default=None)
    search.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None)
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=_search_command)

    serve = commands.add_parser(
        "serve-model", help="serve a model version over HTTP (EAS-style and OpenAI-compatible)",
        description="Tokens come from the environment: RAGREC_SERVE_TOKEN (callers), "
                    "RAGREC_ADMIN_TOKEN (model swaps; off when unset).")
    serve.add_argument("--model", default="base",
                       help="model directory: path, file://, oss://bucket/prefix, or 'base'")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--service", default="ragrec-embed", help="EAS service name in the path")
    serve.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None)
    serve.add_argument("--max-batch", type=int, default=64, help="texts per model call")
    serve.add_argument("--max-wait-ms", type=float, default=4.0,
                       help="how long a request waits for others to share its batch")
    serve.set_defaults(handler=_serve_model_command)

    api = commands.add_parser(
        "serve-api", help="serve search, Q&A, recommendations and the web page over HTTP",
        description="Settings come from the environment: RAGREC_API_TOKEN (callers), "
                    "RAGREC_EMBED_URL/RAGREC_EMBED_TOKEN (model endpoint; else in process), "
                    "RAGREC_REGISTRY, RAGREC_LLM_URL/RAGREC_LLM_MODEL/RAGREC_LLM_API_KEY "
                    "(OpenAI-compatible chat; else extractive answers), "
                    "RAGREC_ANSWER_MIN_SUPPORT; ES_URL or the local node.")
    api.add_argument("--index", default=None, help="alias to serve (RAGREC_API_INDEX, "
                                                   "default ragrec-kb)")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--host", default="127.0.0.1")
    api.set_defaults(handler=_serve_api_command)

    events = commands.add_parser(
        "events", help="export logged clicks as training pairs for 'ragrec train --clicks'")
    events.add_argument("action", choices=["export"])
    events.add_argument("--index", default="ragrec-kb")
    events.add_argument("--out", required=True, help="JSONL file of {query, doc_id, label}")
    events.set_defaults(handler=_events_command)

    recs = commands.add_parser(
        "recs", help="train recommendations: feature-table sync, then rec_train (neighbours, "
                     "tower, blend tuned on the index's own events)")
    recs.add_argument("action", choices=["train"])
    recs.add_argument("--index", default="ragrec-kb", help="the knowledge-base alias")
    recs.add_argument("--no-tune", action="store_true",
                      help="keep the live blend weights (no validation split)")
    recs.set_defaults(handler=_recs_command)

    evaluate = commands.add_parser(
        "eval", help="evaluate a model version on a BEIR dataset: retrieval (every mode) or "
                     "cited answers ('ragrec eval answers')")
    evaluate.add_argument("target", nargs="?", choices=["retrieval", "answers"],
                          default="retrieval",
                          help="answers: cited sentences vs DIR/rationales (human evidence), "
                               "else DIR/answers (gold answer spans)")
    evaluate.add_argument("--dataset", default=None,
                          help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/*.tsv "
                               "(optional with --events)")
    evaluate.add_argument("--events", default=None, metavar="ALIAS",
                          help="also (or, without --dataset, only) judge the version by the "
                               "held-out traffic of ALIAS-events: counterfactual nDCG@10 of "
                               "the clicked documents, corrected for position bias, with a "
                               "95%% interval; without --dataset, --index defaults to ALIAS")
    evaluate.add_argument("--holdout", type=int, default=150,
                          help="--events: the queries first seen last that are held out "
                               "(as 'ragrec train --events' holds them out)")
    evaluate.add_argument("--index", default=None,
                          help="alias holding (or to hold) the corpus (default: "
                               "ragrec-eval-<dataset folder name>)")
    evaluate.add_argument("--rationales", default=None,
                          help="answers: folder of <split>.jsonl + sentences.jsonl "
                               "(default: DIR/rationales)")
    evaluate.add_argument("--answer-mode", "--answers-mode", dest="answer_mode",
                          choices=["extractive", "llm"], default="extractive",
                          help="answers: the extractive selector, or the LLM at "
                               "RAGREC_LLM_URL")
    evaluate.add_argument("--tune-claims", type=int, default=150,
                          help="answers: train claims (the 'ragrec train' hold-out sample) "
                               "the selection policy is tuned on; 0: the shipped policy")
    evaluate.add_argument("--no-rerank", action="store_true",
                          help="answers: a --reranker's cross-encoder selects sentences "
                               "only; the passages keep the first-stage order")
    evaluate.add_argument("--limit", type=int, default=None,
                          help="answers: only the first N claims of the split (a quick look)")
    evaluate.add_argument("--mode", action="append",
                          choices=["all", "bm25", "dense", "hybrid", "hybrid-convex",
                                   "hybrid+rerank"],
                          help="repeatable; default all")
    evaluate.add_argument("--model", default="base", help="model URI or 'base'")
    evaluate.add_argument("--reranker", action="append", default=None,
                          help="model URI whose reranker to use (default: --model's own); "
                               "answers: repeatable, each a system beside the cosine "
                               "selector of --model")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--tune-queries", type=int, default=150,
                          help="train-split queries used to tune fusion and rerank weights "
                               "(at most a fifth of them)")
    evaluate.add_argument("--rerank-top", type=int, default=50)
    evaluate.add_argument("--depth", type=int, default=300, help="chunks per leg per query")
    evaluate.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=None)
    evaluate.add_argument("--report-dir", default="eval-reports",
                          help="JSON per model version + index.html comparing them")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_eval_command)

    train = commands.add_parser(
        "train", help="fine-tune the query encoder (embedder: documents keep the base "
                      "version's vectors) or the reranker")
    train.add_argument("kind", choices=["embedder", "reranker"])
    train.add_argument("--dataset", default=None,
                       help="BEIR folder (corpus, queries, qrels); optional with --events")
    train.add_argument("--base", default="base", help="model URI to start from, or 'base'")
    train.add_argument("--out", required=True, help="model version directory (file://)")
    train.add_argument("--index", default="ragrec-train-corpus",
                       help="alias holding the corpus, indexed by the base version: the "
                            "embedder learns against its vectors, the reranker's hard "
                            "negatives are mined from it")
    train.add_argument("--split", default="train", help="qrels split to learn from")
    train.add_argument("--clicks", default=None,
                       help="JSONL of logged {query, doc_id, label} events (ragrec events "
                            "export) to learn from instead")
    train.add_argument("--events", default=None, metavar="ALIAS",
                       help="learn from the deployment's own traffic: the impressions and "
                            "clicks in ALIAS-events, corrected for position bias; the "
                            "documents are --index's own, the queries first seen last are "
                            "held out (--holdout) to pick the epoch on")
    train.add_argument("--correction", choices=["ipw", "none"], default="ipw",
                       help="--events: weight clicks by the inverse of their position's "
                            "examination propensity, fitted from the log (ipw), or take "
                            "every clicked result as a positive (none: the naive reading)")
    train.add_argument("--rationales", default=None,
                       help="reranker: a folder of human-marked evidence sentences "
                            "(<split>.jsonl + sentences.jsonl) to also learn (claim, "
                            "evidence sentence) pairs: the extractive answer's selector")
    train.add_argument("--negatives", type=int, default=None,
                       help="reranker: hard negatives mined per pair (default 2; the "
                            "embedder's negatives are every indexed chunk)")
    train.add_argument("--holdout", type=int, default=150,
                       help="train queries kept out of training (at most a fifth of them): "
                            "the sample 'ragrec eval --tune-queries N' (N <= this) tunes "
                            "fusion weights on, and the embedder's query encoder picks its "
                            "epoch on (0: none held out, every epoch trained)")
    train.add_argument("--max-minutes", type=float, default=DEFAULT_MAX_MINUTES,
                       help="wall-clock budget from an indexed corpus to the saved model "
                            "(the reranker's hard negatives, at most a third of it, then "
                            "training; building the index first and the evaluation after are "
                            "extra); the steps "
                            "that fit are trained on a sample that keeps every query it can; "
                            f"0: none (default {DEFAULT_MAX_MINUTES:g})")
    train.add_argument("--max-steps", type=int, default=None,
                       help="at most this many optimiser steps")
    train.add_argument("--epochs", type=int, default=None,
                       help=f"default: embedder up to {KIND_DEFAULTS['embedder']['epochs']} "
                            f"(the held-out queries pick the epoch kept), reranker "
                            f"{KIND_DEFAULTS['reranker']['epochs']} (a budget that runs out "
                            "first ends the run)")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                       default=TrainingDeviceSettings.from_env().precision,
                       help="auto: bfloat16 autocast where the CPU/GPU has bf16 arithmetic")
    train.add_argument("--lr", type=float, default=None,
                       help="default: 5e-5 (embedder and reranker)")
    train.add_argument("--seed", type=int, default=13)
    train.add_argument("--name", default=None, help="model name on the card")
    train.add_argument("--eval-split", default="test",
                       help="split for the before/after metrics (never used to select)")
    train.add_argument("--no-eval", action="store_true")
    train.add_argument("--json", action="store_true")
    train.set_defaults(handler=_train_command)

    models = commands.add_parser(
        "models", help="model registry: list | register URI | promote NAME VERSION | "
                       "rollback NAME; base encoders: bases | install-base NAME",
        description="Registry root: --registry or RAGREC_REGISTRY (file:// or oss://). "
                    "Base encoders: `bases` lists the catalogue, `install-base NAME` "
                    "fetches one (sha256-pinned) for --model base:NAME.")
    models.add_argument("action", choices=["list", "register", "promote", "rollback",
                                           "bases", "install-base"])
    models.add_argument("target", nargs="?", help="model URI (register), model name, or "
                                                  "base encoder name (install-base)")
    models.add_argument("--jar", default=None,
                        help="install-base: a local copy of the base's jar (no Maven)")
    models.add_argument("version", nargs="?", help="version (promote)")
    models.add_argument("--stage", choices=["candidate", "production"], default=None)
    models.add_argument("--no-stage", action="store_true", help="register without a stage")
    models.add_argument("--name", default=None, help="list one model name")
    models.add_argument("--registry", default=None)
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=_models_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as exc:  # one clear line for the operator, not a traceback
        from ragrec.dev.es_node.distribution import DistributionError
        from ragrec.dev.es_node.java_runtime import JavaNotFound
        from ragrec.dev.es_node.node import NodeError
        from ragrec.embedding.base import EmbeddingError
        from ragrec.embedding.bases import BaseModelError
        from ragrec.es_client import ElasticsearchNotConfigured
        from ragrec.eval.answers import AnswerEvalError
        from ragrec.eval.runner import EvalError
        from ragrec.indexing.language import LanguageError
        from ragrec.indexing.versions import IndexVersionError
        from ragrec.models.registry import RegistryError
        from ragrec.models.resolver import ModelUnavailable, TextRefused
        from ragrec.models.store import ModelNotFound
        from ragrec.retrieval import EncoderMismatch, NoReranker, SpecError
        from ragrec.sources.base import SourceError
        from ragrec.sync import IngestError

        if isinstance(exc, ElasticsearchNotConfigured | NodeError | DistributionError
                      | JavaNotFound | SourceError | IngestError | EmbeddingError
                      | EncoderMismatch | IndexVersionError | ModelNotFound
                      | EvalError | AnswerEvalError | RegistryError | NoReranker | SpecError
                      | ModelUnavailable | TextRefused | BaseModelError | LanguageError):
            _log(f"ragrec: error: {exc}")
            return 2
        from elasticsearch import ApiError, TransportError

        from ragrec.sync import describe_es_failure

        if isinstance(exc, ApiError | TransportError):
            _log(f"ragrec: error: {describe_es_failure(exc)}")
            return 2
        if isinstance(exc, ValueError | OSError | KeyError | UnicodeError):
            # Bad input the checks above did not name: a malformed file, a missing one.
            _log(f"ragrec: error: {_describe(exc)}")
            return 2
        from ragrec.config import cli_debug

        if cli_debug():
            raise
        _log(f"ragrec: error: unexpected {type(exc).__name__}: {exc} (RAGREC_DEBUG=1 shows "
             f"where)")
        return 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"a record lacks the field {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc})"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
