"""Collaborative item neighbours learned from an interaction matrix, kept as each item's
top ``n`` neighbours with weights - the form they are stored and served in - and a user's
scores from them: ``score(j) = sum over the user's items i of weight(i) * S[i, j]``.

* ``cooccurrence``: items consumed by the same people, ``C = X^T X`` over decayed weights,
  normalised by popularity ``S[i, j] = C[i, j] / (n_i ** alpha * n_j ** (1 - alpha) +
  shrink)`` (``alpha = 0.5``: cosine), so a blockbuster is not everyone's neighbour.
* ``ease``: Steck's EASE, the closed-form linear item-item model ``B = I - P / diag(P)``
  with ``P = (X^T X + l2 I)^-1`` (zero diagonal), on the ``max_items`` most consumed items
  (a dense inverse: the catalogue's head; the tail is left to the other sources)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass
class ItemNeighbours:
    items: list[str]
    weights: sparse.csr_matrix  # items x items, at most ``n`` entries a row
    method: str

    def __post_init__(self):
        self.index = {item: n for n, item in enumerate(self.items)}

    def of(self, item: str) -> list[tuple[str, float]]:
        """The item's neighbours, strongest first."""
        row = self.index.get(item)
        if row is None:
            return []
        start, end = self.weights.indptr[row], self.weights.indptr[row + 1]
        pairs = zip(self.weights.indices[start:end], self.weights.data[start:end], strict=True)
        return sorted(((self.items[c], float(w)) for c, w in pairs), key=lambda p: -p[1])

    def scores(self, history: dict[str, float]) -> dict[str, float]:
        """Each neighbour of the history's items, scored; the history's own items left out."""
        return score_history((self.of(item) for item in history), history.values(), history)


def score_history(neighbour_lists, weights, seen) -> dict[str, float]:
    """``sum weight(i) * S[i, j]`` over the history's neighbour lists (as read from the
    feature table or from an ``ItemNeighbours``), without the items in ``seen``."""
    totals: dict[str, float] = {}
    for pairs, weight in zip(neighbour_lists, weights, strict=True):
        for item, value in pairs:
            if item not in seen:
                totals[item] = totals.get(item, 0.0) + weight * value
    return totals


def top_n(dense: np.ndarray, n: int) -> sparse.csr_matrix:
    """Each row's ``n`` largest positive entries of a dense matrix (``_top_sparse`` keeps a
    sparse one sparse)."""
    rows, cols, vals = [], [], []
    for row, values in enumerate(dense):
        keep = min(n, int((values > 0).sum()))
        if keep == 0:
            continue
        best = np.argpartition(-values, keep - 1)[:keep]
        rows.extend([row] * keep)
        cols.extend(best.tolist())
        vals.extend(values[best].tolist())
    return sparse.csr_matrix((vals, (rows, cols)), shape=dense.shape, dtype=np.float32)


def cooccurrence(matrix: sparse.csr_matrix, items: list[str], n: int = 100,
                 shrink: float = 10.0, alpha: float = 0.5) -> ItemNeighbours:
    x = sparse.csr_matrix(matrix, dtype=np.float64)
    co = (x.T @ x).tocsr()
    co.setdiag(0.0)
    co.eliminate_zeros()
    mass = np.asarray(x.multiply(x).sum(axis=0)).ravel()  # n_i: an item's own weight
    left = np.power(mass, alpha)
    right = np.power(mass, 1.0 - alpha)
    coo = co.tocoo()
    values = coo.data / (left[coo.row] * right[coo.col] + shrink)
    normalised = sparse.csr_matrix((values, (coo.row, coo.col)), shape=co.shape)
    return ItemNeighbours(list(items), _top_sparse(normalised, n), "cooccurrence")


def _top_sparse(matrix: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    rows, cols, vals = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        values, columns = matrix.data[start:end], matrix.indices[start:end]
        if len(values) > n:
            best = np.argpartition(-values, n - 1)[:n]
            values, columns = values[best], columns[best]
        positive = values > 0
        rows.extend([row] * int(positive.sum()))
        cols.extend(columns[positive].tolist())
        vals.extend(values[positive].tolist())
    return sparse.csr_matrix((vals, (rows, cols)), shape=matrix.shape, dtype=np.float32)


def ease(matrix: sparse.csr_matrix, items: list[str], l2: float = 500.0, n: int = 100,
         max_items: int = 10_000) -> ItemNeighbours:
    x = sparse.csr_matrix(matrix, dtype=np.float64)
    consumed = np.asarray((x > 0).sum(axis=0)).ravel()
    head = np.sort(np.argsort(-consumed, kind="stable")[:max_items])
    head = head[consumed[head] > 0]
    sub = x[:, head]
    gram = (sub.T @ sub).toarray()
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    b = -inverse / np.diag(inverse)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    kept = top_n(b, n).tocoo()
    full = sparse.csr_matrix((kept.data, (head[kept.row], head[kept.col])),
                             shape=(len(items), len(items)), dtype=np.float32)
    return ItemNeighbours(list(items), full, "ease")
