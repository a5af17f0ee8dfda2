"""Cited answers, one command: teach the cross-encoder SciFact's human-marked evidence
sentences, then judge the extractive answers of the base model (cosine selector) and of the
fine-tuned cross-encoder side by side with ``ragrec eval answers``; then the conversation set
over the sample documents through ``/chat`` (follow-up citations, p50 latency with rerank).

    bench/run answers_scifact                        # ~45 min on 2 CPU cores
    bench/run answers_scifact --llm-url http://127.0.0.1:8765/v1 --llm-model smollm2-135m-instruct \
        --llm-claims 20                              # plus the local LLM (scripts/local-llm)

Protocol: SciFact test claims (= SciFact's labelled dev set), open retrieval over all 5,183
abstracts; sentence precision/recall/F1 as SciFact scores selection, over claims with
evidence; the selection policy of each system tuned on the train claims ``ragrec train``
holds out (150-query sample); the cross-encoder trained on the other train claims' passages
and evidence sentences (``ragrec train reranker --rationales``, 1 epoch), used both as
reranker + selector and as selector only (``--no-rerank``). Target: fine-tuned
F1 >= 0.60 and above the base; follow-ups cite the expected document >= 90 %; /chat p50 <=
500 ms with rerank.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT, SCIFACT

CONVERSATIONS = ROOT / "tests" / "data" / "sample_conversations.jsonl"


def ragrec(*args: str, env: dict | None = None) -> dict:
    result = subprocess.run([sys.executable, "-m", "ragrec.cli", *args, "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"ragrec {' '.join(args)} failed ({result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def conversation_set(model_uri: str, rerank: bool) -> dict:
    """The conversation set through /chat (in process, the real node) on the sample
    documents indexed with ``model_uri``: how often each turn cites the expected document,
    and the latency of a turn."""
    import uuid

    from fastapi.testclient import TestClient

    from ragrec.api.app import create_app
    from ragrec.chunking import ModelTokenizer
    from ragrec.config import ApiSettings
    from ragrec.embedding import encoder_for
    from ragrec.es_client import connect
    from ragrec.models.resolver import ModelResolver
    from ragrec.models.uris import load_layout
    from ragrec.sources import open_source
    from ragrec.sources.samples import samples_dir
    from ragrec.sync import IngestOptions, Ingestor

    client = connect()
    layout = load_layout(model_uri)
    alias = f"bench-chat-{uuid.uuid4().hex[:8]}"
    Ingestor(client, encoder_for(layout.embedder_dir), ModelTokenizer(layout.embedder_dir),
             IngestOptions(show_progress=False)).ingest(open_source(str(samples_dir())), alias)
    models = ModelResolver()
    models.add(layout)
    app = create_app(client, models, ApiSettings(index=alias))
    conversations = [json.loads(line) for line in CONVERSATIONS.read_text().splitlines()
                     if line.strip()]
    hits = {"first": [], "follow-up": []}
    seconds = []
    try:
        with TestClient(app) as api:
            api.post("/chat", json={"question": "warm up", "rerank": rerank})
            for conversation in conversations:
                cid = None
                for number, turn in enumerate(conversation["turns"]):
                    body = {"question": turn["question"], "rerank": rerank,
                            **({"conversation_id": cid} if cid else {})}
                    started = time.perf_counter()
                    reply = api.post("/chat", json=body).json()
                    seconds.append(time.perf_counter() - started)
                    cid = reply["conversation_id"]
                    cited = {c["doc_id"] for c in reply["citations"]}
                    hits["first" if number == 0 else "follow-up"].append(turn["doc_id"] in cited)
    finally:
        for name in client.indices.get(index=f"{alias}*", expand_wildcards="all"):
            client.indices.delete(index=name, ignore_unavailable=True)
    seconds.sort()
    return {"model": layout.version, "rerank": rerank, "conversations": len(conversations),
            "turns": len(seconds),
            "first_turn_cites_expected": round(statistics.fmean(hits["first"]), 4),
            "follow_up_cites_expected": round(statistics.fmean(hits["follow-up"]), 4),
            "p50_ms": round(1000 * seconds[len(seconds) // 2], 1),
            "p95_ms": round(1000 * seconds[int(0.95 * (len(seconds) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/var/tmp/ragrec-models/scifact-selector")
    parser.add_argument("--index", default="bench-scifact-base")
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate the version already at --out instead of training")
    parser.add_argument("--llm-url", default=None)
    parser.add_argument("--llm-model", default="smollm2-135m-instruct")
    parser.add_argument("--llm-claims", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out)
    data = ["--dataset", str(SCIFACT), "--index", args.index]
    started = time.monotonic()
    if not args.reuse:
        if out.exists():
            shutil.rmtree(out)
        ragrec("train", "reranker", *data, "--rationales", str(SCIFACT / "rationales"),
               "--out", str(out), "--name", "scifact-selector", "--epochs", "1", "--no-eval")
    trained = time.monotonic()
    report = ragrec("eval", "answers", *data, "--reranker", str(out),
                    "--report-dir", str(ROOT / "eval-reports" / "answers"))
    selector = ragrec("eval", "answers", *data, "--reranker", str(out), "--no-rerank",
                      "--tune-claims", "150",
                      "--report-dir", str(ROOT / "eval-reports" / "answers-selector"))
    report["systems"].update({k: v for k, v in selector["systems"].items()
                              if k not in report["systems"]})
    evaluated = time.monotonic()
    llm_report = None
    if args.llm_url:
        env = {**os.environ, "RAGREC_LLM_URL": args.llm_url, "RAGREC_LLM_MODEL": args.llm_model}
        llm_report = ragrec("eval", "answers", *data, "--answer-mode", "llm", "--limit",
                            str(args.llm_claims), "--report-dir",
                            str(ROOT / "eval-reports" / "answers-llm"), env=env)
    chats = [conversation_set(str(out), rerank=True), conversation_set("base", rerank=False)]
    print(f"protocol: {report['protocol']}")
    print(f"{'system':<62} {'P':>6} {'R':>6} {'F1':>6} {'absR':>6} {'cites':>6} "
          f"{'refuse':>6} {'p50 ms':>7}")
    reports = [report] + ([llm_report] if llm_report else [])
    for one in reports:
        for label, entry in one["systems"].items():
            m = entry["metrics"]
            suffix = f" [{m['claims']} claims]" if one is llm_report else ""
            print(f"{(label + suffix)[:62]:<62} {m['sentence_precision']:6.3f} "
                  f"{m['sentence_recall']:6.3f} {m['sentence_f1']:6.3f} "
                  f"{m['evidence_abstract_recall']:6.3f} {m['claims_citing_evidence']:6.3f} "
                  f"{m['refusal_rate_without_evidence'] or 0:6.3f} {m['latency_ms_p50']:7.1f}")
    for label, entry in report["systems"].items():
        print(f"tuned on validation: {label}: {json.dumps(entry.get('tuned'))}")
    print("conversation set over the sample documents, /chat in process, 1 client:")
    for chat in chats:
        print(f"  {chat['model']} rerank={chat['rerank']}: {chat['turns']} turns, first "
              f"turns {chat['first_turn_cites_expected']:.1%}, follow-ups "
              f"{chat['follow_up_cites_expected']:.1%} cite the expected document; p50 "
              f"{chat['p50_ms']} ms, p95 {chat['p95_ms']} ms")
    print(f"seconds: train {trained - started:.0f}, eval {evaluated - trained:.0f}, "
          f"total {time.monotonic() - started:.0f}")


if __name__ == "__main__":
    main()
