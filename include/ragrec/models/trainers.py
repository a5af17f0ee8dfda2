"""Fine-tuning loops for the bi-encoder and the cross-encoder (plain PyTorch, CPU or GPU).

* Query encoder: the bi-encoder's query side only, against the document vectors the index
  already holds - each query's positive against every other document of the corpus (a
  document scores its best chunk), cosine scaled by 20, cross-entropy over the corpus. The
  documents keep the base version's encoder, so nothing but short queries runs through the
  model while training: about 2.4 s a step of 32 queries on 2 cores, where training both sides
  took 14 s (documents cut to 128 word pieces) to 30 s (256). The held-out train queries,
  ranked over the same vectors after each epoch, pick the epoch whose weights are saved.
* Cross-encoder: listwise softmax cross-entropy over each query's positive and its hard
  negatives, starting from the bi-encoder's transformer with a fresh scoring head (which
  may learn faster than the body: ``head_lr_scale``).

Both fit a budget (``budget.StepBudget``: ``max_steps``, and a deadline the job sets from
``--max-minutes``): the examples are taken a query at a time (``budget.by_query_rounds``), so
a run cut short by the budget has trained on as many queries as it could, and says which
sample it used. Progress lines (step, loss, rate, ETA) go to stderr: a live line on a
terminal, a line every 10 s in logs (an Airflow task's log too).

Deterministic for a seed on a given machine (data order, negatives, weight init;
single-threaded data handling) when ``max_steps`` and not the clock ends the run. AdamW,
linear warm-up then linear decay over the planned steps, gradient clipping at 1. Precision
``auto`` runs the forward pass under bfloat16 autocast where the hardware has bfloat16
arithmetic (GPUs that support it; CPUs with AVX512-BF16 or AMX), weights and optimiser state
stay float32; about 1.6x faster per step on a 2-core AVX512-BF16 CPU.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from ragrec.config import TrainingDeviceSettings
from ragrec.embedding.base import with_prefix
from ragrec.embedding.bases import PREFIXES
from ragrec.embedding.in_process import model_prefixes
from ragrec.embedding.onnx_graph import write_graph
from ragrec.models.budget import StepBudget, by_query_rounds
from ragrec.models.train_settings import TrainSettings
from ragrec.models.training_data import IndexedCorpus, TrainingSet
from ragrec.progress import Progress

EXPORT_RESERVE = 30.0  # seconds a budget leaves for saving the model and its ONNX graph


def _seed_everything(seed: int):
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch


def _device() -> str:
    import torch

    return TrainingDeviceSettings.from_env().device or ("cuda" if torch.cuda.is_available()
                                                        else "cpu")


def bf16_is_fast(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _autocast(settings: TrainSettings, device: str):
    """The forward-pass context for ``settings.precision``, and the precision it resolved to."""
    import torch

    if settings.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {settings.precision!r}")
    bf16 = settings.precision == "bf16" or (settings.precision == "auto"
                                             and bf16_is_fast(device))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16), "bf16" if bf16 else "fp32"


def _budget(settings: TrainSettings, batches: int, deadline: float | None,
            kind: str) -> tuple[StepBudget, Progress]:
    budget = StepBudget(batches, settings.max_steps,
                        None if deadline is None else deadline - time.monotonic(),
                        reserve=EXPORT_RESERVE)
    if budget.max_seconds is not None and budget.max_seconds <= EXPORT_RESERVE:
        raise TrainingBudgetSpent(
            f"the {settings.max_minutes:g}-minute budget was spent before training started "
            f"(hard negatives); raise --max-minutes")
    return budget, Progress(kind, budget.total, unit="steps")


class TrainingBudgetSpent(ValueError):
    pass


def _budget_report(budget: StepBudget, settings: TrainSettings, kind: str) -> dict:
    """The card's ``budget``, and a warning on stderr when it held less than one pass over
    the data (a model trained on part of it may rank worse than the one it started from)."""
    covered = budget.steps / (budget.data_steps / settings.epochs)
    if covered < 1:
        print(f"{kind}: warning: the budget held {budget.steps} of {budget.data_steps} steps "
              f"({covered:.2f} of an epoch); check the version with ragrec eval before a "
              f"rollout, or raise --max-minutes", file=sys.stderr, flush=True)
    return {**budget.report(), "max_minutes": settings.max_minutes,
            "epochs_covered": round(covered, 2)}


def _step_done(budget: StepBudget, progress: Progress, loss: float) -> bool:
    more = budget.step_done()
    progress.total = budget.total
    progress.update(budget.steps, f"loss {loss:.4f}  {budget.seconds_per_step:.1f} s/step",
                    force=not more)
    return more


def _schedule(optimizer, budget: StepBudget, warmup_fraction: float):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, budget.lr_factor(warmup_fraction))


def _update(loss, parameters, optimizer, scheduler) -> float:
    """One optimiser step: backward, clip at 1, step, schedule; returns the loss."""
    import torch

    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


class _Encoding:
    """The model being trained, as an in-process embedder (``embed(texts, role).vectors``),
    for the held-out figures between epochs: each role's text with the base's prefix in
    front (``prefixes``: e5's ``query: ``, bge's search instruction), as served."""

    def __init__(self, model, prefixes: dict[str, str] | None = None):
        self.model, self.prefixes = model, prefixes or {}

    def embed(self, texts: list[str], role: str = "document") -> SimpleNamespace:
        vectors = self.model.encode(with_prefix(texts, self.prefixes, role), batch_size=64,
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        self.model.train()  # encode() leaves the model in eval mode
        return SimpleNamespace(vectors=vectors)


SMALL_HELD_OUT = 50  # held-out traffic queries below which a gain must exceed its error


def _error(first: dict[str, float], second: dict[str, float]) -> float:
    """The standard error of the mean per-query difference between two figures."""
    import statistics

    differences = [first[q] - second[q] for q in first]
    return statistics.stdev(differences) / len(differences) ** 0.5 \
        if len(differences) > 1 else 0.0


class _BestEpoch:
    """The held-out figure (nDCG@10 over the indexed corpus) after each epoch, and the
    weights of the epoch to keep (epoch 0: the base's). A budget that stops the run
    mid-epoch gets one last figure there: ``steps`` says where each was taken.

    Judged held-out queries keep the best epoch (a tie keeps the later, more trained,
    weights). Labels from clicks are noisy (``within_error``): the kept epoch is the latest
    whose figure is within one standard error of the best epoch's (of the per-query
    differences) and not below the base's, because a noisy figure's best is often an early
    epoch by chance. Measured on SciFact's click log (6 sessions a query): the best epoch
    by held-out traffic was epoch 2 (test dense 0.6952), the latest within one error epoch
    10 (0.7072). Over fewer than ``SMALL_HELD_OUT`` held-out queries the figure cannot tell
    a gain from chance: a trained epoch is kept only when it beats the base's figure by
    more than one standard error, else the base's weights stay. Measured on a cut set (25
    held-out queries, where held-out gains of 0.007 and 0.017 were within one error):
    without that rule the kept epoch was 0.006 below the base on the test split, with it
    the base's weights stay."""

    def __init__(self, model, corpus: IndexedCorpus, held_out: tuple[dict, dict],
                 within_error: bool = False, prefixes: dict[str, str] | None = None):
        self.model, self.corpus, self.held_out = model, corpus, held_out
        self.encoding = _Encoding(model, prefixes)
        self.within_error = within_error
        self.figures: list[float] = []
        self.per_query: list[dict[str, float]] = []
        self.steps: list[int] = []
        self.weights: dict[int, dict] = {}
        self.seconds = 0.0

    def measure(self, step: int) -> None:
        started = time.monotonic()
        scores = self.corpus.ndcg_by_query(self.encoding, *self.held_out)
        self.per_query.append(scores)
        self.figures.append(round(sum(scores.values()) / max(len(scores), 1), 4))
        self.steps.append(step)
        self.weights[len(self.figures) - 1] = {k: v.detach().clone()
                                               for k, v in self.model.state_dict().items()}
        keep = self._candidates()
        self.weights = {e: w for e, w in self.weights.items() if e in keep}
        self.seconds += time.monotonic() - started

    @property
    def best(self) -> float:
        return max(self.figures)

    def _best_epoch(self) -> int:
        return max(i for i, f in enumerate(self.figures) if f == self.best)

    def _candidates(self) -> set[int]:
        """The epochs that may still be kept: the best, and with ``within_error`` those
        within one standard error of it and not below the base."""
        best = self._best_epoch()
        if not self.within_error:
            return {best}
        kept = {0, best}  # the base's weights stay restorable (``chosen``)
        for epoch, figure in enumerate(self.figures):
            if epoch == best or figure < self.figures[0]:
                continue
            if self.best - figure <= _error(self.per_query[best], self.per_query[epoch]):
                kept.add(epoch)
        return kept

    @property
    def chosen(self) -> int:
        epoch = max(self._candidates())
        if self.within_error and epoch and len(self.per_query[0]) < SMALL_HELD_OUT \
                and self.figures[epoch] - self.figures[0] <= _error(self.per_query[epoch],
                                                                     self.per_query[0]):
            return 0
        return epoch

    def since_best(self) -> int:
        return len(self.figures) - 1 - self._best_epoch()

    def restore(self) -> None:
        self.model.load_state_dict(self.weights[self.chosen])

    def report(self) -> dict:
        return {"queries": len(self.held_out[0]), "ndcg@10_by_epoch": self.figures,
                "at_steps": self.steps, "chosen_epoch": self.chosen,
                "rule": ("latest within one standard error of the best"
                         + (", beating the base by more than one error"
                            if len(self.per_query[0]) < SMALL_HELD_OUT else ""))
                if self.within_error else "best", "seconds": round(self.seconds, 1)}


def train_query_encoder(base_dir: Path, training: TrainingSet, corpus: IndexedCorpus,
                        out_dir: Path, settings: TrainSettings,
                        deadline: float | None = None,
                        held_out: tuple[dict, dict] | None = None,
                        clicks: bool = False) -> dict:
    """Fine-tunes the query side only: queries from ``base_dir``'s encoder against the
    document vectors the index already holds (``corpus``, fixed), each query's positive
    against every other document of the corpus (a document scores its best chunk; softmax
    over the corpus, cosine x ``settings.scale``; each pair's loss by its ``weight``). No
    document is encoded while training,
    so a step costs a few short queries; the saved encoder serves queries for a version
    whose documents keep the base's vectors. ``deadline``: ``time.monotonic()`` by which
    the model must be saved.

    ``held_out``: (query id -> text, qrels) of train queries kept out of training. After
    each epoch they are ranked over the corpus, and the saved weights are those of the
    epoch with the best nDCG@10 (the base's when none beats it; ``clicks``: held-out traffic,
    the latest epoch within one standard error of the best, see ``_BestEpoch``);
    ``settings.patience`` epochs without a better figure end the run."""
    torch = _seed_everything(settings.seed)
    from sentence_transformers import SentenceTransformer

    device = _device()
    model = SentenceTransformer(str(base_dir), device=device, local_files_only=True)
    prefixes = model_prefixes(base_dir)  # the base's, read in front of every query
    served_length = model.max_seq_length  # what the saved model reads, whatever training cut
    model.max_seq_length = min(settings.max_length, served_length or settings.max_length)
    documents, owner = corpus.owners()
    column = {d: i for i, d in enumerate(documents)}
    examples = [e for e in training.examples if e.positive in column]
    if not examples:
        raise ValueError("no training pair's positive document is in the index")
    positives: dict[str, set[int]] = {}
    for example in examples:
        positives.setdefault(example.query, set()).add(column[example.positive])
    # A pair's loss counts by its weight (clicks: the pair's relevance estimate), scaled so
    # that the average pair counts 1 and the learning rate means the same as for judged
    # pairs (all of weight 1).
    mean_weight = max(sum(e.weight for e in examples) / len(examples), 1e-6)
    vectors = torch.from_numpy(corpus.vectors).to(device)
    owner_index = torch.from_numpy(owner).to(device)
    rng = random.Random(settings.seed)
    size = settings.batch_size
    batches, epoch_ends = [], set()
    for _epoch in range(settings.epochs):
        order = by_query_rounds(examples, lambda e: e.query, rng)
        batches += [order[i:i + size] for i in range(0, len(order), size)]
        epoch_ends.add(len(batches))
    selection = _BestEpoch(model, corpus, held_out, within_error=clicks, prefixes=prefixes) \
        if held_out and held_out[0] else None
    if selection is not None:
        selection.measure(0)  # epoch 0: the base
    budget, progress = _budget(settings, len(batches), deadline, "query encoder")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                  weight_decay=0.01)
    scheduler = _schedule(optimizer, budget, settings.warmup_fraction)
    autocast, precision = _autocast(settings, device)
    model.train()
    last = 0.0
    for batch in batches:
        texts = with_prefix([e.query for e in batch], prefixes, "query")
        features = (model.preprocess(inputs=texts)  # sentence-transformers 6
                    if hasattr(model, "preprocess") else model.tokenize(texts))
        features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
        with autocast:
            queries = torch.nn.functional.normalize(model(features)["sentence_embedding"],
                                                    dim=-1)
        chunk_scores = queries.float() @ vectors.T
        scores = torch.full((len(batch), len(documents)), -1e4, device=device).scatter_reduce(
            1, owner_index.expand(len(batch), -1), chunk_scores, reduce="amax")
        scores = scores * settings.scale
        target = torch.tensor([column[e.positive] for e in batch], device=device)
        for row, example in enumerate(batch):  # the query's other positives are no negatives
            others = sorted(positives[example.query] - {column[example.positive]})
            if others:
                scores[row, others] = -1e4
        weights = torch.tensor([e.weight for e in batch], device=device)
        loss = (torch.nn.functional.cross_entropy(scores, target, reduction="none")
                * weights).sum() / (len(batch) * mean_weight)
        last = _update(loss, model.parameters(), optimizer, scheduler)
        more = _step_done(budget, progress, last)
        if selection is not None and (budget.steps in epoch_ends or not more):
            selection.measure(budget.steps)
            if more and settings.patience is not None \
                    and selection.since_best() >= settings.patience:
                budget.stopped_by = "held_out"
                more = False
        if not more:
            break
    progress.close()
    if selection is not None:
        selection.restore()
        _say_chosen(selection, epoch_ends)
    model.eval()
    model.max_seq_length = served_length
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    if (Path(base_dir) / PREFIXES).is_file():  # served queries get the prefix it learnt with
        shutil.copy2(Path(base_dir) / PREFIXES, out_dir / PREFIXES)
    write_graph(out_dir, out_dir / "model.onnx", "hidden")  # what the runtime serves
    used = [e for batch in batches[:budget.steps] for e in batch]
    return {"steps": budget.steps, "final_loss": round(last, 4),
            "seconds": round(time.monotonic() - budget.started, 1), "device": device,
            "precision": precision, "loss": "softmax over the indexed corpus",
            "corpus": {"chunks": len(corpus.doc_ids), "documents": len(documents)},
            "budget": _budget_report(budget, settings, "query encoder"),
            "sample": _sample(used, examples, lambda e: e.query),
            **({"held_out": selection.report()} if selection is not None else {})}


def _say_chosen(selection: _BestEpoch, epoch_ends: set[int]) -> None:
    figures = " ".join(f"{f:.4f}" for f in selection.figures)
    chosen, last = selection.chosen, selection.steps[-1]
    cut = "" if last in epoch_ends or not last else \
        f" (the last after step {last}, where the run stopped mid-epoch)"
    why = ""
    if chosen == 0:
        small = selection.within_error and len(selection.per_query[0]) < SMALL_HELD_OUT
        why = (f" (no epoch beat the base by more than one standard error over "
               f"{len(selection.per_query[0])} held-out queries" if small and
               selection.best > selection.figures[0] else " (no epoch beat the base") \
            + ": the query encoder keeps its weights)"
    print(f"query encoder: held-out nDCG@10 by epoch (0 = base): {figures}{cut}; keeping "
          f"epoch {chosen}{why}", file=sys.stderr, flush=True)


def _sample(used: list, available: list, query_of) -> dict:
    """What a run trained on, beside what it had (an example seen in two epochs counts
    once)."""
    distinct = {id(item): item for item in used}.values()
    return {"pairs": len(distinct), "of_pairs": len(available),
            "queries": len({query_of(i) for i in distinct}),
            "of_queries": len({query_of(i) for i in available})}


def train_reranker(init_dir: Path, training: TrainingSet, out_dir: Path,
                   settings: TrainSettings,
                   deadline: float | None = None) -> dict:
    """Listwise: each query's positive against its mined negatives in one softmax (the
    score only has to rank, so a fresh scoring head cannot settle on the class prior the way
    pointwise BCE does); ``settings.batch_size`` counts (query, document) pairs."""
    torch = _seed_everything(settings.seed)
    from sentence_transformers import CrossEncoder

    device = _device()
    model = CrossEncoder(str(init_dir), num_labels=1, device=device, local_files_only=True,
                         max_length=settings.max_length)
    groups = [(e.query, [training.documents[e.positive]]
               + [training.documents[n] for n in e.negatives])
              for e in training.examples if e.negatives]
    if not groups:
        raise ValueError("no training example has a hard negative to rank against")
    rng = random.Random(settings.seed)
    batches = [batch for _epoch in range(settings.epochs)
               for batch in _group_batches(groups, settings.batch_size, rng)]
    budget, progress = _budget(settings, len(batches), deadline, "reranker")
    network = model.model if hasattr(model, "model") else model[0].auto_model
    tokenizer = model.tokenizer
    network.to(device)
    head = [p for name, p in network.named_parameters() if name.startswith("classifier")]
    body = [p for name, p in network.named_parameters() if not name.startswith("classifier")]
    optimizer = torch.optim.AdamW(
        [{"params": body}, {"params": head,
                            "lr": settings.learning_rate * settings.head_lr_scale}],
        lr=settings.learning_rate, weight_decay=0.01)
    scheduler = _schedule(optimizer, budget, settings.warmup_fraction)
    autocast, precision = _autocast(settings, device)
    network.train()
    last = 0.0
    for batch in batches:
        queries = [q for q, docs in batch for _ in docs]
        documents = [d for _, docs in batch for d in docs]
        features = tokenizer(queries, documents, padding=True, truncation="only_second",
                             max_length=settings.max_length, return_tensors="pt")
        features = {k: v.to(device) for k, v in features.items()}
        with autocast:
            logits = network(**features).logits.view(-1).float()
        losses, position = [], 0
        for _, docs in batch:
            group = logits[position:position + len(docs)]
            losses.append(torch.nn.functional.cross_entropy(
                group.unsqueeze(0), torch.zeros(1, dtype=torch.long, device=device)))
            position += len(docs)
        loss = torch.stack(losses).mean()
        last = _update(loss, network.parameters(), optimizer, scheduler)
        if not _step_done(budget, progress, last):
            break
    progress.close()
    network.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    write_graph(out_dir, out_dir / "model.onnx", "score")  # what the runtime serves
    used = [group for batch in batches[:budget.steps] for group in batch]
    return {"steps": budget.steps, "final_loss": round(last, 4), "groups": len(groups),
            "pairs": sum(len(d) for _, d in groups),
            "seconds": round(time.monotonic() - budget.started, 1), "device": device,
            "precision": precision, "loss": "listwise softmax",
            "budget": _budget_report(budget, settings, "reranker"),
            "sample": _sample(used, groups, lambda g: g[0])}


def _group_batches(groups: list, batch_size: int, rng: random.Random) -> list[list]:
    """Batches of whole groups, each batch of groups of one size (a batch of short sentence
    groups is not padded to a passage group's length) holding about ``batch_size`` (query,
    document) pairs, the last of a size fewer; groups are taken a query at a time
    (``by_query_rounds``) and batches come in the order of their first group, so a prefix
    of them covers the most queries."""
    order = by_query_rounds(groups, lambda g: g[0], rng)
    by_size: dict[int, list] = {}
    for rank, group in enumerate(order):
        by_size.setdefault(len(group[1]), []).append((rank, group))
    batches = []
    for size in sorted(by_size):
        members = by_size[size]
        step = max(1, batch_size // size)
        batches += [members[i:i + step] for i in range(0, len(members), step)]
    batches.sort(key=lambda batch: batch[0][0])
    return [[group for _, group in batch] for batch in batches]
