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
        def claim(row: dict) -> Claim:
            evidence = {str(doc): {int(i) for r in sets for i in r["sentences"]}
                        for doc, sets in (row.get("evidence") or {}).items()}
            return Claim(str(row["id"]), row["claim"], evidence)

        return _records(path, "a rationale record", claim)

    def sentences(self) -> dict[str, list[str]]:
        path = self.root / "sentences.jsonl"
        if not path.is_file():
            raise AnswerEvalError(f"no {path}")
        with open(path, encoding="utf-8") as handle:
            return {str(r["_id"]): r["sentences"] for r in map(json.loads, handle) if r}


def _records(path: Path, what: str, build) -> list:
    """``build`` of each JSON line of ``path``; a line it cannot read is one error naming
    the file and line."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(build(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise AnswerEvalError(f"{path}:{number}: not {what} ({exc})") from None
    return records


@dataclass(frozen=True)
class SpanQuestion:
    id: str
    text: str
    doc: str  # the paragraph the answers are taken from
    answers: tuple[str, ...]


@dataclass
class AnswerSpans:
    """Reading-comprehension gold (CMRC 2018, SQuAD-style sets in BEIR layout):
    ``answers/<split>.jsonl`` rows of ``query_id``, ``doc_id`` and ``answers`` (the gold
    spans), the question texts from the dataset's ``queries.jsonl``."""

    root: Path
    queries: dict[str, str]

    def claims(self, split: str) -> list[SpanQuestion]:
        path = self.root / f"{split}.jsonl"
        if not path.is_file():
            raise AnswerEvalError(f"no {path} (answers: <split>.jsonl of query_id, doc_id, "
                                  f"answers)")
        def question(row: dict) -> SpanQuestion:
            golds = tuple(a for a in row["answers"] if isinstance(a, str) and a.strip())
            return SpanQuestion(str(row["query_id"]), self.queries[str(row["query_id"])],
                                str(row["doc_id"]), golds)

        return [q for q in _records(path, "an answer record", question) if q.answers]


def gold_of(dataset, rationales: Path | None = None) -> Rationales | AnswerSpans:
    """What a dataset's answers are judged against: ``rationales`` (or the dataset's
    ``rationales/``: evidence sentences), else its ``answers/`` (gold answer spans)."""
    if rationales is not None or (dataset.root / "rationales").is_dir():
        return Rationales(rationales or dataset.root / "rationales")
    if (dataset.root / "answers").is_dir():
        return AnswerSpans(dataset.root / "answers", dataset.queries())
    raise AnswerEvalError(f"{dataset.root} has neither rationales/ (evidence sentences) nor "
                          f"answers/ (gold answer spans) to judge answers against")


def _plain(text: str) -> str:
    """Text compared for answer spans: lower case, without spaces and punctuation (CJK or
    Latin), as CMRC's scorer compares."""
    import unicodedata

    return "".join(c for c in text.lower()
                   if not c.isspace() and not unicodedata.category(c).startswith("P"))


def _char_f1(prediction: str, gold: str) -> float:
    """F1 over the characters of the longest common substring (CMRC 2018's answer F1)."""
    a, b = _plain(prediction), _plain(gold)
    if not a or not b:
        return 0.0
    longest, previous = 0, [0] * (len(b) + 1)
    for ca in a:
        current = [0] * (len(b) + 1)
        for j, cb in enumerate(b, start=1):
            if ca == cb:
                current[j] = previous[j - 1] + 1
                longest = max(longest, current[j])
        previous = current
    if not longest:
        return 0.0
    precision, recall = longest / len(a), longest / len(b)
    return 2 * precision * recall / (precision + recall)


def score_spans(judged: list[Judged]) -> dict:
    """Metrics of answers to span questions: how often the answer's best sentence (the one
    its selector scored highest) contains a gold answer span (exact match, CMRC's
    normalisation), how often any sentence of the answer does, the best sentence's
    character F1 against the closest gold span, and how often the gold paragraph is cited."""
    best_em = any_em = f1_sum = cited_gold = refused = cited_sentences = 0
    for j in judged:
        sentences = j.answer.sentences
        if not sentences:
            refused += 1
            continue
        golds = [_plain(g) for g in j.claim.answers]
        best = max(sentences, key=lambda s: s.score if s.score is not None else float("-inf"))
        best_em += any(g in _plain(best.text) for g in golds)
        any_em += any(g in _plain(" ".join(s.text for s in sentences)) for g in golds)
        f1_sum += max(_char_f1(best.text, g) for g in j.claim.answers)
        cited_sentences += len(sentences)
        cited_gold += any(_doc_key(c.doc_id) == j.claim.doc
                          for s in sentences for c in s.citations)
    count = len(judged) or 1
    seconds = sorted(j.seconds for j in judged)
    return {
        "questions": len(judged),
        "best_sentence_exact_match": round(best_em / count, 4),
        "answer_contains_gold": round(any_em / count, 4),
        "best_sentence_char_f1": round(f1_sum / count, 4),
        "gold_paragraph_cited": round(cited_gold / count, 4),
        "refusal_rate": round(refused / count, 4),
        "sentences_per_answer": round(cited_sentences / max(count - refused, 1), 2),
        "latency_ms_p50": round(1000 * seconds[len(seconds) // 2], 1) if seconds else 0.0,
    }


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
    claim: Claim | SpanQuestion
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
    spans = isinstance(rationales, AnswerSpans)
    mapping = None if spans else SentenceMap(rationales.sentences())
    evaluated = rationales.claims(split)[:limit]
    validation = []
    if tune_claims and not spans:  # span questions are answered under the served policy
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
        entry["metrics"] = score_spans(run) if spans else \
            score([(j.claim, cited(j.answer, mapping), j.seconds) for j in run])
        entry["selector"] = next((j.answer.scorer for j in run if j.answer.scorer), None)
        entry["spec"] = run[0].answer.context.spec.to_dict() if run else None
        entry["model_version"] = run[0].answer.context.version if run else None
        results[system.label] = entry
        headline = ("best-sentence EM", "best_sentence_exact_match") if spans else \
            ("F1", "sentence_f1")
        print(f"answers {system.label}: {headline[0]} {entry['metrics'][headline[1]]}",
              file=sys.stderr, flush=True)
    protocol = SPAN_PROTOCOL if spans else PROTOCOL
    return {"kind": "answers", "split": split, "index": alias, "k": k,
            "gold": "answer spans" if spans else "rationales",
            "protocol": protocol.format(split=split, tune=len(validation), k=k),
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


SPAN_PROTOCOL = (
    "questions of answers/{split}.jsonl answered by the served answer path: open retrieval "
    "over the whole corpus (the index's served spec), top {k} passages over min_support, "
    "extractive sentence selection under the served policy; a gold answer span matches "
    "when it is inside the sentence once both are lower-cased and stripped of spaces and "
    "punctuation; best sentence = the selector's highest-scored cited sentence; character "
    "F1 = longest common substring against the closest gold span (CMRC 2018's F1); a "
    "refused answer counts as a miss; latency per question (retrieve + select) on this "
    "machine")

SPAN_COLUMNS = ("best_sentence_exact_match", "answer_contains_gold", "best_sentence_char_f1",
                "gold_paragraph_cited", "refusal_rate", "sentences_per_answer",
                "latency_ms_p50")
# The terminal summary's columns (metric, heading), by gold kind: ``ragrec eval answers``
# and bench/answers_bases print these.
SUMMARY = {
    "answer spans": (("answer_contains_gold", "contains"),
                     ("best_sentence_exact_match", "bestEM"),
                     ("best_sentence_char_f1", "charF1"), ("gold_paragraph_cited", "para"),
                     ("refusal_rate", "refuse"), ("latency_ms_p50", "p50 ms")),
    "rationales": (("sentence_precision", "P"), ("sentence_recall", "R"),
                   ("sentence_f1", "F1"), ("evidence_abstract_recall", "absR"),
                   ("refusal_rate_without_evidence", "refuse"), ("latency_ms_p50", "p50 ms")),
}


def summary_cells(metrics: dict, gold: str) -> str:
    """One system's summary row (fractions to 3 places, latency to 0.1 ms)."""
    return "".join(f" {metrics.get(key) or 0:>7.1f}" if key.startswith("latency")
                   else f" {metrics.get(key) or 0:>7.3f}" for key, _ in SUMMARY[gold])


def summary_heading(gold: str) -> str:
    return "".join(f" {label:>7}" for _, label in SUMMARY[gold])


RATIONALE_COLUMNS = ("sentence_precision", "sentence_recall", "sentence_f1",
                     "evidence_abstract_recall", "claims_citing_evidence",
                     "refusal_rate_without_evidence", "sentences_per_answer",
                     "latency_ms_p50")


def write_answer_report(report: dict, folder: Path) -> tuple[Path, Path]:
    import html

    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"answers-{report['split']}.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True))
    spans = report.get("gold") == "answer spans"
    columns = SPAN_COLUMNS if spans else RATIONALE_COLUMNS
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f"<td>{entry['metrics'].get(c)}</td>" for c in columns) + "</tr>"
        for label, entry in report["systems"].items())
    page = (f"<!doctype html><meta charset='utf-8'><title>ragrec answer evaluation</title>"
            f"<h1>Cited answers vs {'gold answer spans' if spans else 'human evidence'} "
            f"({html.escape(report['split'])})</h1>"
            f"<p>{html.escape(report['protocol'])}</p><table border='1' cellpadding='4'>"
            "<tr><th>system</th>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
            f"{rows}</table>")
    html_path = folder / f"answers-{report['split']}.html"
    html_path.write_text(page, encoding="utf-8")
    return json_path, html_path
