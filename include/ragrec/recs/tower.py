"""A small recommendation tower over the content vectors, learned from what people consume
next.

The base model places documents by what they say; people move between documents for other
reasons too (a film's year and audience, a policy's next step). The tower is one linear map
``W`` (dims x dims, starting at the identity, so untrained it is the base cosine) applied
to an item's content vector; it is fitted on consumption sequences - each user's
consecutive pairs ``item -> next item`` - with in-batch negatives (a softmax over the
batch's next items, both directions, temperature ``temperature``) and a pull back towards
the identity (``l2``), by Adam in NumPy: no torch on the workers. Because it maps the
*content* vector, it applies to items nobody has consumed yet, which is what it is for: the
content candidates of cold items.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TowerSettings:
    epochs: int = 4
    batch: int = 512
    temperature: float = 0.05
    learning_rate: float = 1e-3
    l2: float = 1e-3  # towards the identity
    max_pairs: int = 200_000
    seed: int = 7

    def to_dict(self) -> dict:
        return asdict(self)


def next_item_pairs(sequences: dict[str, list[str]], known: Iterable[str],
                    max_pairs: int | None = None, seed: int = 7) -> list[tuple[str, str]]:
    """Each user's consecutive distinct ``(item, next item)``, both with a content vector;
    a random ``max_pairs`` of them when there are more."""
    known = set(known)
    pairs = [(a, b) for items in sequences.values() for a, b in itertools.pairwise(items)
             if a != b and a in known and b in known]
    if max_pairs and len(pairs) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    return pairs


@dataclass
class Tower:
    weights: np.ndarray  # dims x dims

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Tower vectors, unit length (their dot product is the tower's cosine)."""
        out = np.asarray(vectors, dtype=np.float32) @ self.weights
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def train(vectors: np.ndarray, index: dict[str, int], pairs: list[tuple[str, str]],
          settings: TowerSettings = TowerSettings(),
          progress: Callable[[int, float], None] | None = None) -> tuple[Tower, dict]:
    """Fits ``W`` on ``pairs`` of items (rows of ``vectors`` by ``index``); returns the tower
    and a report with the mean loss of each epoch."""
    if not pairs:
        raise ValueError("no consecutive pairs of items with content vectors to learn from")
    x = np.asarray(vectors, dtype=np.float32)
    dims = x.shape[1]
    eye = np.eye(dims, dtype=np.float32)
    weights = eye.copy()
    first = np.asarray([index[a] for a, _ in pairs])
    second = np.asarray([index[b] for _, b in pairs])
    rng = np.random.default_rng(settings.seed)
    moment, velocity, step = np.zeros_like(weights), np.zeros_like(weights), 0
    losses = []
    for epoch in range(settings.epochs):
        order = rng.permutation(len(pairs))
        total, batches = 0.0, 0
        for start in range(0, len(order), settings.batch):
            rows = order[start:start + settings.batch]
            if len(rows) < 2:
                continue
            a, b = x[first[rows]], x[second[rows]]
            qa, qb = a @ weights, b @ weights
            logits = (qa @ qb.T) / settings.temperature
            forward, backward = _softmax_rows(logits), _softmax_rows(logits.T)
            diagonal = np.arange(len(rows))
            loss = -(np.log(forward[diagonal, diagonal] + 1e-12).mean()
                     + np.log(backward[diagonal, diagonal] + 1e-12).mean()) / 2
            forward[diagonal, diagonal] -= 1.0
            backward[diagonal, diagonal] -= 1.0
            d_logits = (forward + backward.T) / (2 * len(rows) * settings.temperature)
            grad = a.T @ (d_logits @ qb) + b.T @ (d_logits.T @ qa)
            grad += 2 * settings.l2 * (weights - eye)
            step += 1
            moment = 0.9 * moment + 0.1 * grad
            velocity = 0.999 * velocity + 0.001 * grad * grad
            corrected = moment / (1 - 0.9 ** step)
            scale = np.sqrt(velocity / (1 - 0.999 ** step)) + 1e-8
            weights -= settings.learning_rate * corrected / scale
            total += float(loss)
            batches += 1
        losses.append(total / max(batches, 1))
        if progress is not None:
            progress(epoch + 1, losses[-1])
    return Tower(weights), {"pairs": len(pairs), "epoch_losses": [round(v, 4) for v in losses],
                            "settings": settings.to_dict()}
