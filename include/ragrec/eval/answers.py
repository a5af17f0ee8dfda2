"""``ragrec eval answers``: cited answers judged against human-marked evidence.

For every claim of ``rationales/<split>.jsonl`` the real answer path (``answers.Answerer``:
open retrieval over the whole corpus under the index's served spec, then the extractive
sentence selector) answers it, and the cited sentences are scored against the rationales
(SciFact's sentence-level selection metric: a cited sentence counts when it is in a gold
rationale of that abstract; micro precision, recall and F1 over the claims with evidence).
Also: evidence-abstract recall, how often an evidence abstract is cited at all, the refusal
rate on claims without evidence, and latency per answer.

Each system (the base model's cosine selector; each cross-encoder given) has its selection
policy tuned on validation claims: the ``ragrec train`` hold-out sample of the train split
(``datasets.tuning_sample``), never the reported split.

Cited spans are mapped to the abstract's sentence numbers by their character offsets in the
abstract (the corpus text is the rationale sentences joined by single spaces); a span that
cannot be located falls back to the sentence it shares most words with.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ragrec.answers.answerer import Answer, Answerer
from ragrec.answers.selection import DEFAULT_POLICIES, SelectionPolicy, choose
from ragrec.answers.words import content_words
from ragrec.eval.datasets import tuning_sample
from ragrec.progress import Progress
from ragrec.retrieval import SearchSpec


class AnswerEvalError(ValueError):
    pass


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    evidence: dict[str, set[int]]  # doc id -> gold rationale sentence numbers


@dataclass
class Rationales:
    root: Path

    def claims(self, split: str) -> list[Claim]:
        path = self.root / f"{split}.jsonl"
        if not path.is_file():
            raise AnswerEvalError(f"no {path} (rationales: <split>.jsonl and sentences.jsonl)")
        claims = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    evidence = {str(doc): {int(i) for r in sets for i in r["sentences"]}
                                for doc, sets in (row.get("evidence") or {}).items()}
                    claims.append(Claim(str(row["id"]), row["claim"], evidence))
                except (ValueError, KeyError, TypeError) as exc:
                    raise AnswerEvalError(f"{path}:{number}: not a rationale record "
                                          f"({exc})") from None
        return claims

    def sentences(self) -> dict[str, list[str]]:
        path = self.root / "sentences.jsonl"
        if not path.is_file():
            raise AnswerEvalError(f"no {path}")
        with open(path, encoding="utf-8") as handle:
            return {str(r["_id"]): r["sentences"] for r in map(json.loads, handle) if r}


class SentenceMap:
    """A cited (document, span text) -> that abstract's sentence number."""

    def __init__(self, sentences: dict[str, list[str]]):
        self.sentences = sentences
        self._joined: dict[str, tuple[str, list[tuple[int, int]]]] = {}

    def _layout(self, doc: str):
        if doc not in self._joined:
            bounds, at = [], 0
            parts = [" ".join(s.split()) for s in self.sentences.get(doc, [])]
            for part in parts:
                bounds.append((at, at + len(part)))
                at += len(part) + 1
            self._joined[doc] = (" ".join(parts), bounds)
        return self._joined[doc]

    def locate(self, doc: str, text: str) -> int | None:
        joined, bounds = self._layout(doc)
        if not bounds:
            return None
        needle = " ".join(text.split())
        at = joined.find(needle)
        if at >= 0:
            end = at + len(needle)
            overlaps = [min(end, e) - max(at, s) for s, e in bounds]
            return max(range(len(bounds)), key=overlaps.__getitem__)
        words = set(content_words(needle))
        scores = [len(words & set(content_words(s))) / (len(words) or 1)
                  for s in self.sentences[doc]]
        best = max(range(len(scores)), key=scores.__getitem__)
        return best if scores[best] >= 0.5 else None


def _doc_key(doc_id: str) -> str:
    return doc_id.removesuffix(".md")


@dataclass
class Judged:
    claim: Claim
    answer: Answer
    seconds: float


def cited(answer: Answer, mapping: SentenceMap) -> set[tuple[str, int]]:
    found = set()
    for sentence in answer.sentences:
        for c in sentence.citations:
            passage = next(p for p in answer.context.passages if p.number == c.number)
            number = mapping.locate(_doc_key(c.doc_id), passage.text[c.start:c.end])
            if number is not None:
                found.add((_doc_key(c.doc_id), number))
    return found


def score(judged: list[tuple[Claim, set[tuple[str, int]], float]]) -> dict:
    """Metrics of (claim, cited (doc, sentence) pairs, seconds) rows."""
    with_evidence = [(c, s) for c, s, _ in judged if c.evidence]
    without = [(c, s) for c, s, _ in judged if not c.evidence]
    hits = selected = gold = 0
    gold_docs = found_docs = claims_cited = 0
    for claim, pairs in with_evidence:
        hits += sum(1 for d, i in pairs if i in claim.evidence.get(d, ()))
        selected += len(pairs)
        gold += sum(len(v) for v in claim.evidence.values())
        docs = {d for d, _ in pairs}
        gold_docs += len(claim.evidence)
        found_docs += len(docs & set(claim.evidence))
        claims_cited += bool(docs & set(claim.evidence))
    precision = hits / selected if selected else 0.0
    recall = hits / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    nei_selected = sum(len(s) for _, s in without)
    full_p = hits / (selected + nei_selected) if selected + nei_selected else 0.0
    full_f1 = 2 * full_p * recall / (full_p + recall) if full_p + recall else 0.0
    seconds = sorted(t for _, _, t in judged)
    return {
        "claims": len(judged), "claims_with_evidence": len(with_evidence),
        "sentence_precision": round(precision, 4), "sentence_recall": round(recall, 4),
        "sentence_f1": round(f1, 4),
        "evidence_abstract_recall": round(found_docs / gold_docs, 4) if gold_docs else 0.0,
        "claims_citing_evidence": round(claims_cited / len(with_evidence), 4)
        if with_evidence else 0.0,
        "refusal_rate_without_evidence": round(
            sum(not s for _, s in without) / len(without), 4) if without else None,
        "refusal_rate_with_evidence": round(
            sum(not s for _, s in with_evidence) / len(with_evidence), 4)
        if with_evidence else None,
        "sentences_per_answer": round(selected / len(with_evidence), 2)
        if with_evidence else 0.0,
        "sentence_f1_counting_no_evidence_claims": round(full_f1, 4),
        "latency_ms_mean": round(1000 * statistics.fmean(seconds), 1) if seconds else 0.0,
        "latency_ms_p50": round(1000 * seconds[len(seconds) // 2], 1) if seconds else 0.0,
        "latency_ms_p95": round(1000 * seconds[int(0.95 * (len(seconds) - 1))], 1)
        if seconds else 0.0,
    }


def answer_all(answerer: Answerer, alias: str, claims: list[Claim], spec_of, k: int,
               label: str, show_progress: bool) -> list[Judged]:
    progress = Progress(f"answers {label}", len(claims), enabled=show_progress,
                        unit="claims")
    judged = []
    for done, claim in enumerate(claims, start=1):
        started = time.monotonic()
        answer = answerer.answer(alias, claim.text, spec_of, k)
        judged.append(Judged(claim, answer, time.monotonic() - started))
        progress.update(done)
    progress.close()
    return judged


POLICY_GRID = {"passages": (1, 2, 3, 5), "max_sentences": (1, 2, 3, 4, 5),
               "per_document": (2, 3)}


def tune_policy(judged: list[Judged], mapping: SentenceMap, kind: str) -> tuple[
        SelectionPolicy, float]:
    """The policy with the best sentence F1 on ``judged`` (claims with evidence), re-choosing
    from each answer's scored sentences (no new model calls). Gaps and floors are searched
    on the scale of the scores seen."""
    scores = sorted(c.score for j in judged for c in j.answer.scored)
    if not scores:
        return DEFAULT_POLICIES.get(kind, SelectionPolicy()), 0.0
    spread = scores[int(0.95 * (len(scores) - 1))] - scores[int(0.05 * (len(scores) - 1))]
    gaps = [round(spread * f, 4) for f in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)]
    floors = sorted({round(scores[int(q * (len(scores) - 1))], 4)
                     for q in (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)})
    located = {}
    for j in judged:
        for c in j.answer.scored:
            key = (id(j), c.passage.number, c.span.start)
            located[key] = mapping.locate(_doc_key(c.passage.doc_id), c.span.text)
    best, best_f1 = None, -1.0
    for p, m, d, g, f in itertools.product(POLICY_GRID["passages"],
                                           POLICY_GRID["max_sentences"],
                                           POLICY_GRID["per_document"], gaps, floors):
        policy = SelectionPolicy(passages=p, max_sentences=m, per_document=d, gap=g, floor=f)
        rows = []
        for j in judged:
            pairs = set()
            for c in choose(j.answer.scored, policy):
                number = located[(id(j), c.passage.number, c.span.start)]
                if number is not None:
                    pairs.add((_doc_key(c.passage.doc_id), number))
            rows.append((j.claim, pairs, j.seconds))
        f1 = score(rows)["sentence_f1"]
        if f1 > best_f1:
            best, best_f1 = policy, f1
    return best, best_f1


@dataclass(frozen=True)
class System:
    label: str
    answerer: Answerer
    spec: SearchSpec | None = None  # None: the index's served spec


def evaluate(systems: list[System], alias: str, rationales: Rationales, split: str = "test",
             tune_claims: int = 150, k: int = 5, show_progress: bool = True,
             train_ids: list[str] | None = None, limit: int | None = None) -> dict:
    """One report: every system tuned on the validation claims, then run on ``split``.
    ``train_ids``: the train split's query ids the hold-out sample is drawn from (those of
    the train qrels, as ``ragrec train`` draws it; default: the train claims')."""
    started = time.monotonic()
    mapping = SentenceMap(rationales.sentences())
    evaluated = rationales.claims(split)[:limit]
    validation = []
    if tune_claims:
        train = rationales.claims("train")
        held = set(tuning_sample(train_ids or [c.id for c in train], tune_claims))
        validation = [c for c in train if c.id in held and c.evidence]
    results = {}
    for system in systems:
        def spec_of(served, system=system):
            return system.spec or served
        entry: dict = {}
        if validation:
            # Every passage scored, so the grid can try each passage count.
            served = dict(system.answerer.policies)
            system.answerer.policies = {
                kind: p.with_(passages=max(POLICY_GRID["passages"])) for kind, p in
                (served or {"cosine": SelectionPolicy()}).items()}
            tuned_run = answer_all(system.answerer, alias, validation, spec_of, k,
                                   f"{system.label} (validation)", show_progress)
            system.answerer.policies = served
            kind = next((j.answer.scorer for j in tuned_run if j.answer.scorer), "cosine")
            policy, f1 = tune_policy(tuned_run, mapping, kind)
            system.answerer.policies[kind] = policy
            entry["tuned"] = {"claims": len(validation), "policy": policy.to_dict(),
                              "validation_sentence_f1": round(f1, 4), "selector": kind}
        run = answer_all(system.answerer, alias, evaluated, spec_of, k, system.label,
                         show_progress)
        rows = [(j.claim, cited(j.answer, mapping), j.seconds) for j in run]
        entry["metrics"] = score(rows)
        entry["selector"] = next((j.answer.scorer for j in run if j.answer.scorer), None)
        entry["spec"] = run[0].answer.context.spec.to_dict() if run else None
        entry["model_version"] = run[0].answer.context.version if run else None
        results[system.label] = entry
        print(f"answers {system.label}: F1 {entry['metrics']['sentence_f1']}",
              file=sys.stderr, flush=True)
    return {"kind": "answers", "split": split, "index": alias, "k": k,
            "protocol": PROTOCOL.format(split=split, tune=len(validation), k=k),
            "systems": results, "seconds": round(time.monotonic() - started, 1)}


PROTOCOL = (
    "claims of rationales/{split}.jsonl answered by the served answer path: open retrieval "
    "over the whole corpus (the index's served spec; rerank on for systems with a "
    "cross-encoder unless --no-rerank; each system's spec is in the report), top {k} "
    "passages over min_support, extractive sentence selection; "
    "cited sentences mapped to abstract sentence numbers; sentence precision/recall/F1 "
    "micro-averaged over claims with evidence (a cited sentence counts when it is in a gold "
    "rationale of that abstract); refusal rate over claims without evidence; selection "
    "policy tuned on {tune} train claims with evidence from the ragrec-train hold-out "
    "sample (never the reported split); latency per claim (retrieve + select) on this "
    "machine")


def write_answer_report(report: dict, folder: Path) -> tuple[Path, Path]:
    import html

    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"answers-{report['split']}.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True))
    columns = ("sentence_precision", "sentence_recall", "sentence_f1",
               "evidence_abstract_recall", "claims_citing_evidence",
               "refusal_rate_without_evidence", "sentences_per_answer", "latency_ms_p50")
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{entry['metrics'].get(c)}</td>" for c in columns) + "</tr>"
        for label, entry in report["systems"].items())
    page = (f"<!doctype html><meta charset='utf-8'><title>ragrec answer evaluation</title>"
            f"<h1>Cited answers vs human evidence ({html.escape(report['split'])})</h1>"
            f"<p>{html.escape(report['protocol'])}</p><table border='1' cellpadding='4'>"
            "<tr><th>system</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
            f"{rows}</table>")
    html_path = folder / f"answers-{report['split']}.html"
    html_path.write_text(page, encoding="utf-8")
    return json_path, html_path
