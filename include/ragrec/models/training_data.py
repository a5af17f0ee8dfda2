"""Training examples for the custom models: (query, positive document) pairs from BEIR qrels
or from logged clicks, plus hard negatives mined from the live index (BM25 and dense) for
the cross-encoder, and the index's own document vectors for the query encoder."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from elasticsearch import Elasticsearch

from ragrec.eval.datasets import BeirDataset, tuning_sample

# Chunks the query encoder trains against, at most (positives always kept): 1M x 384 float32
# is 1.5 GB and a 32-query step's scores 32M floats.
MAX_CORPUS_CHUNKS = 1_000_000


@dataclass
class Example:
    query: str
    positive: str  # document id
    negatives: list[str] = field(default_factory=list)
    weight: float = 1.0  # the pair's share of the loss (clicks: its relevance estimate)


@dataclass
class TrainingSet:
    examples: list[Example]
    documents: dict[str, str]  # doc id -> text the models read (title + body)
    source: str

    def digest(self) -> str:
        """Content hash of everything the model learns from (for the model card's lineage)."""
        h = hashlib.sha256()
        for example in self.examples:
            row = [example.query, example.positive, example.negatives]
            h.update(json.dumps(row if example.weight == 1.0 else [*row, example.weight])
                     .encode())
        for doc_id in sorted(self._used_ids()):  # a set from events may hold no texts
            text = self.documents.get(doc_id)
            if text is not None:
                h.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()

    def _used_ids(self) -> set[str]:
        used = set()
        for example in self.examples:
            used.add(example.positive)
            used.update(example.negatives)
        return used


def corpus_id(doc_id: str) -> str:
    """A document as the training corpus names it: the index's id, without the ``.md`` a
    corpus written as files adds (``IndexedCorpus``, mined negatives and click labels
    alike)."""
    return doc_id.removesuffix(".md")


def document_text(doc: dict) -> str:
    title = (doc.get("title") or "").strip()
    return f"{title}\n{doc['text']}" if title else doc["text"]


def from_beir(dataset: BeirDataset, split: str = "train", holdout: int = 0) -> TrainingSet:
    """Judged (query, document) pairs of ``split``, minus the ``holdout`` queries of the
    tuning sample (``evaluation.tuning_sample``) that ``ragrec eval`` tunes weights on."""
    queries, qrels = dataset.queries(), dataset.qrels(split)
    held = set(tuning_sample(qrels, holdout)) if holdout else set()
    documents = {d["_id"]: document_text(d) for d in dataset.corpus()}
    examples = [Example(queries[qid], doc_id)
                for qid in sorted(qrels) if qid not in held
                for doc_id, grade in sorted(qrels[qid].items())
                if grade > 0 and doc_id in documents]
    source = f"beir:{dataset.root.name}/{split}" + (f" minus {len(held)} held-out queries"
                                                     if held else "")
    return TrainingSet(examples, documents, source)


def from_clicks(path: Path, documents: dict[str, str]) -> TrainingSet:
    """``{"query", "doc_id", "label"}`` per line (``ragrec events export`` writes them;
    ``label`` 1 - a click, a source that helped, a thumbs-up - or 0 for a thumbs-down, 1
    when absent). Positives become examples; a query's negatives are kept as its examples'
    first hard negatives. Duplicates collapse; unknown documents are skipped."""
    seen, examples = set(), []
    negatives: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            key = (row["query"].strip(), row["doc_id"])
            if key in seen or row["doc_id"] not in documents or not key[0]:
                continue
            seen.add(key)
            if row.get("label", 1):
                examples.append(Example(key[0], row["doc_id"]))
            else:
                negatives.setdefault(key[0], []).append(row["doc_id"])
    positives = {(e.query, e.positive) for e in examples}
    for example in examples:
        example.negatives = [d for d in negatives.get(example.query, [])
                             if (example.query, d) not in positives]
    return TrainingSet(examples, documents, f"clicks:{path.name}")


def from_click_labels(labels, documents: dict[str, str] | None = None) -> TrainingSet:
    """The train part of ``feedback.labels.ClickLabels`` as examples: every clicked (query,
    document) pair, weighted by its bias-corrected relevance estimate (the naive reading,
    ``correction="none"``: every clicked pair a positive of weight 1, as ``ragrec events
    export`` gives them); the results skipped above a click are the pair's first hard
    negatives. ``documents`` (id -> text; the reranker's) keeps only pairs it knows."""
    examples = []
    for key in sorted(labels.train):
        query = labels.train[key]
        negatives = sorted(corpus_id(d) for d in query.skipped)
        for doc, gain in sorted(query.gains.items()):
            doc = corpus_id(doc)
            if documents is not None and doc not in documents:
                continue
            weight = gain if labels.applied == "ipw" else 1.0
            examples.append(Example(query.text, doc, [n for n in negatives if n != doc
                                                      and (documents is None or n in documents)],
                                    weight))
    source = (f"events ({labels.applied} correction, {len(labels.train)} queries, "
              f"{len(labels.held_out)} held out)")
    return TrainingSet(examples, documents or {}, source)


def index_documents(client: Elasticsearch, alias: str, max_chars: int = 4000) -> dict[str, str]:
    """Document id (``corpus_id``) -> the text the cross-encoder reads, from the chunks the
    index holds (title, then the chunks in order, up to ``max_chars``): the documents of a
    deployment trained from its own traffic, with no dataset beside it."""
    from elasticsearch import helpers

    parts: dict[str, list[tuple[int, str, str]]] = {}
    for hit in helpers.scan(client, index=alias, query={"query": {"match_all": {}}},
                            _source=["doc_id", "chunk_no", "title", "text"], size=1000):
        source = hit["_source"]
        parts.setdefault(corpus_id(source["doc_id"]), []).append(
            (int(source.get("chunk_no") or 0), source.get("title") or "", source["text"]))
    documents = {}
    for doc, chunks in parts.items():
        chunks.sort()
        title = chunks[0][1].strip()
        body = " ".join(text for _n, _t, text in chunks)
        documents[doc] = (f"{title}\n{body}" if title else body)[:max_chars]
    return documents


def held_out_click_qrels(labels) -> tuple[dict, dict] | None:
    """(query id -> text, qrels) of the held-out traffic, document ids as the corpus names
    them: what the query encoder picks its epoch on when no judged query exists."""
    queries, qrels = labels.qrels("held_out")
    if not queries:
        return None
    return queries, {q: {corpus_id(d): g for d, g in gains.items()} for q, gains in qrels.items()}


def add_rationales(training: TrainingSet, root: Path, split: str = "train",
                   held_out: Iterable[str] = (), in_document: int = 4, retrieved: int = 3,
                   seed: int = 13) -> int:
    """Adds (claim, evidence sentence) examples from a rationales folder (``<split>.jsonl``
    with human-marked evidence sentences per claim, ``sentences.jsonl`` with each document's
    sentences), so the cross-encoder also learns to pick the sentence that answers - the
    extractive answer's selector. Negatives: the evidence document's other sentences, and
    the sentences most like the claim from the documents already mined as its passage
    negatives (call after ``mine_hard_negatives``). Claims in ``held_out`` are skipped (the
    hold-out ``ragrec eval answers`` tunes its selection policy on). Sentence ids are
    ``<doc id>#<n>``; returns the number of examples added."""
    from ragrec.answers.words import content_words

    held = set(held_out)
    with open(root / "sentences.jsonl", encoding="utf-8") as handle:
        sentences = {str(r["_id"]): r["sentences"] for r in map(json.loads, handle) if r}
    mined: dict[str, list[str]] = {}
    for example in training.examples:
        mined.setdefault(example.query, []).extend(example.negatives)
    rng = random.Random(seed)
    added = []
    with open(root / f"{split}.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    for row in rows:
        if str(row["id"]) in held or not row.get("evidence"):
            continue
        claim = row["claim"].strip()
        words = set(content_words(claim))
        far: list[str] = []
        for doc in _unique(mined.get(claim, [])):
            ranked = sorted(range(len(sentences.get(doc, []))), key=lambda i: -len(
                words & set(content_words(sentences[doc][i]))))
            far += [f"{doc}#{i}" for i in ranked[:1]]
        for doc, sets in row["evidence"].items():
            doc = str(doc)
            if doc not in sentences:
                continue
            gold = {int(i) for r in sets for i in r["sentences"]}
            others = [f"{doc}#{i}" for i in range(len(sentences[doc])) if i not in gold]
            for number in sorted(gold):
                negatives = rng.sample(others, min(in_document, len(others))) \
                    + rng.sample(far, min(retrieved, len(far)))
                added.append(Example(claim, f"{doc}#{number}", negatives))
    for doc, texts in sentences.items():
        for number, text in enumerate(texts):
            training.documents[f"{doc}#{number}"] = text
    training.examples.extend(added)
    training.source += f" + rationales:{root.name}/{split} ({len(added)} evidence sentences)"
    return len(added)


def add_chat_feedback(training: TrainingSet, labels, held_out: Iterable[str] = (),
                      in_passage: int = 4, seed: int = 13) -> int:
    """Adds the chat's (question, source sentence) labels (``feedback.chat.ChatLabels``) as
    the cross-encoder's sentence examples - the extractive answer's selector learns what
    users said answered them: each sentence voted helpful a positive, its negatives the
    question's down-voted sentences first, then ``in_passage`` sentences of the cited
    passages the answer passed over. Questions in ``held_out`` (query keys of the held-out
    traffic) are skipped. Call after ``mine_hard_negatives`` (sentences are not in the
    index to mine). Returns the number of examples added."""
    rng = random.Random(seed)
    added = []
    for question in labels.training(set(held_out)).values():
        voted_down = sorted(question.negatives)
        context = sorted(question.context)
        for sid in sorted(question.positives):
            added.append(Example(question.text, sid, voted_down + rng.sample(
                context, min(in_passage, len(context)))))
        for sentences in (question.positives, question.negatives, question.context):
            training.documents.update(sentences)
    training.examples.extend(added)
    training.source += f" + chat feedback ({len(added)} helpful sentences)"
    return len(added)


def mine_hard_negatives(client: Elasticsearch, alias: str, embedder, training: TrainingSet,
                        per_query: int = 3, ranks: tuple[int, int] = (3, 30),
                        seed: int = 13, deadline: float | None = None,
                        show_progress: bool = True, batch: int = 64) -> dict:
    """Fills ``negatives`` with documents the live index ranks high for the query (BM25 and
    dense, ranks ``ranks[0]..ranks[1]``) that are not judged relevant. Skipping the very top
    lowers the chance of an unjudged relevant document becoming a negative.

    Queries are mined in a seeded random order; when ``deadline`` (``time.monotonic()``)
    comes first, the examples of the queries not reached are dropped from ``training`` (a
    budget could not train on them anyway), so what is left is a random sample of queries.
    ``batch`` queries are embedded at a time, the deadline checked between batches (the
    first is always mined). Returns what was mined: ``{"queries", "of_queries",
    "stopped_by"}``."""
    import time

    from ragrec import retrieval
    from ragrec.progress import Progress

    positives: dict[str, set[str]] = {}
    for example in training.examples:
        positives.setdefault(example.query, set()).add(example.positive)
    queries = sorted(positives)
    random.Random(seed ^ 0x5EED).shuffle(queries)
    rng = random.Random(seed)
    pool: dict[str, list[str]] = {}
    depth = ranks[1] * 3  # chunk hits; several chunks per document
    progress = Progress("mine hard negatives", len(queries), unit="queries",
                        enabled=show_progress)
    for start in range(0, len(queries), batch):
        if deadline is not None and start and time.monotonic() >= deadline:
            break
        chunk = queries[start:start + batch]
        for query, vector in zip(chunk, embedder.embed(chunk, role="query").vectors,
                                 strict=True):
            found: list[str] = []
            for hits in (retrieval.bm25(client, alias, query, depth),
                         retrieval.dense(client, alias, vector, depth)):
                ranked = _unique(corpus_id(h.doc_id) for h in hits)
                found += ranked[ranks[0] - 1: ranks[1]]
            pool[query] = [d for d in _unique(found)
                           if d not in positives[query] and d in training.documents]
        progress.update(len(pool))
    progress.close()
    training.examples[:] = [e for e in training.examples if e.query in pool]
    for example in training.examples:
        given = list(example.negatives)  # judged negatives (a thumbs-down) come first
        candidates = [d for d in pool[example.query] if d not in given]
        example.negatives = given + rng.sample(candidates, min(per_query, len(candidates)))
    return {"queries": len(pool), "of_queries": len(queries),
            "stopped_by": "data" if len(pool) == len(queries) else "max_minutes"}


@dataclass
class IndexedCorpus:
    """The document vectors an index holds: one row per chunk (``vectors``, unit length),
    ``doc_ids[row]`` its document. The query encoder trains against these, every chunk of
    the corpus a candidate, and they are read from the index rather than encoded again."""

    doc_ids: list[str]
    vectors: np.ndarray

    @classmethod
    def from_index(cls, client: Elasticsearch, alias: str,
                   max_chunks: int = MAX_CORPUS_CHUNKS, keep: Iterable[str] = (),
                   seed: int = 13) -> IndexedCorpus:
        """Every chunk of ``alias`` (``doc_id`` without the ``.md`` the corpus files add);
        past ``max_chunks``, the chunks of the documents in ``keep`` (the positives) and a
        seeded random sample of the others."""
        from elasticsearch import helpers

        ids, rows = [], []
        for hit in helpers.scan(client, index=alias, query={"query": {"match_all": {}}},
                                _source=["doc_id", "vector"], size=1000):
            source = hit["_source"]
            if source.get("vector"):
                ids.append(corpus_id(source["doc_id"]))
                rows.append(source["vector"])
        if not rows:
            raise ValueError(f"index {alias} holds no vectors to train the query encoder on")
        vectors = np.asarray(rows, dtype=np.float32)
        if len(ids) > max_chunks:
            wanted = set(keep)
            held = [i for i, d in enumerate(ids) if d in wanted]
            others = [i for i, d in enumerate(ids) if d not in wanted]
            picked = sorted(held + random.Random(seed).sample(
                others, max(0, min(len(others), max_chunks - len(held)))))
            ids, vectors = [ids[i] for i in picked], vectors[picked]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return cls(ids, vectors)

    def owners(self) -> tuple[list[str], np.ndarray]:
        """The documents (in order of first chunk), and each chunk's document number."""
        documents = list(dict.fromkeys(self.doc_ids))
        column = {d: i for i, d in enumerate(documents)}
        return documents, np.array([column[d] for d in self.doc_ids], dtype=np.int64)

    def dense_ndcg(self, encoder, dataset: BeirDataset, split: str) -> dict:
        """nDCG@10 (and the rest of ``score_run``) of ``split``'s judged queries, encoded by
        ``encoder`` (an in-process embedder), over these vectors (``ndcg_of``)."""
        queries, qrels = dataset.queries(), dataset.qrels(split)
        return self.ndcg_of(encoder, {q: queries[q] for q in qrels if q in queries}, qrels)

    def ndcg_of(self, encoder, queries: dict[str, str], qrels: dict) -> dict:
        """``score_run`` of ``queries`` (id -> text, encoded by ``encoder``: anything whose
        ``embed(texts).vectors`` are unit vectors) over these vectors, a document scoring
        its best chunk. Exact (no HNSW), and only the queries are encoded."""
        from ragrec.eval.metrics import score_run

        run = self.rankings(encoder, queries)
        if not run:
            return {}
        return {k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in score_run(run, {q: qrels[q] for q in run}).items()}

    def ndcg_by_query(self, encoder, queries: dict[str, str], qrels: dict) -> dict[str, float]:
        """Query id -> nDCG@10, ranked as ``ndcg_of`` ranks."""
        from ragrec.eval.metrics import ndcg_by_query

        run = self.rankings(encoder, queries)
        return ndcg_by_query(run, {q: qrels[q] for q in run})

    def rankings(self, encoder, queries: dict[str, str]) -> dict[str, list[str]]:
        """Query id -> the top 100 documents over these vectors."""
        ids = sorted(queries)
        if not ids:
            return {}
        query_vectors = np.asarray(encoder.embed([queries[q] for q in ids], role="query")
                                   .vectors, dtype=np.float32)
        documents, owner = self.owners()
        order = np.argsort(owner, kind="stable")  # each document's chunks side by side
        starts = np.flatnonzero(np.r_[True, np.diff(owner[order]) != 0])
        grouped = self.vectors[order]
        run = {}
        for first in range(0, len(ids), 256):
            best = np.maximum.reduceat(query_vectors[first:first + 256] @ grouped.T, starts,
                                       axis=1)  # column j: document j's best chunk
            for row, qid in enumerate(ids[first:first + 256]):
                run[qid] = [documents[j] for j in np.argsort(-best[row], kind="stable")[:100]]
        return run


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
