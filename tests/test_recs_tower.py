"""The recommendation tower (``ragrec.recs.tower``): untrained it is the content cosine;
fitted on ``item -> next item`` pairs it brings together what people consume in sequence
even when the content says otherwise - and, being a map of the content vector, it does so
for items that were never in a pair (the cold items it is for)."""

from __future__ import annotations

import numpy as np
import pytest

from ragrec.recs import tower as tw


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_untrained_is_the_content_cosine_and_pairs_skip_repeats_and_unknown_items():
    vectors = _unit(np.random.default_rng(0).normal(size=(5, 8)))
    same = tw.Tower(np.eye(8, dtype=np.float32)).project(vectors * 3.0)
    assert np.allclose(same, vectors, atol=1e-6)
    pairs = tw.next_item_pairs({"u": ["a", "a", "b", "x", "c"], "v": ["c"]}, {"a", "b", "c"})
    assert pairs == [("a", "b")]  # a->a repeats, b->x and x->c name an unknown item
    with pytest.raises(ValueError, match="no consecutive pairs"):
        tw.train(vectors, {}, [])


def test_sequences_pull_unrelated_content_together_for_unseen_items_too():
    rng = np.random.default_rng(1)
    dims, per_group = 16, 30
    directions = _unit(rng.normal(size=(4, dims)))
    # Four topics; people who read topic 0 read topic 1 next, topic 2 then topic 3.
    groups = [_unit(directions[g] + 0.3 * rng.normal(size=(per_group, dims)))
              for g in range(4)]
    vectors = np.vstack(groups).astype(np.float32)
    ids = [f"{g}-{n}" for g in range(4) for n in range(per_group)]
    index = {item: n for n, item in enumerate(ids)}
    sequences = {}
    for user in range(400):
        source = rng.choice([0, 2])
        first, second = rng.integers(0, per_group - 5, size=2)  # the last 5: never read
        sequences[f"u{user}"] = [f"{source}-{first}", f"{source + 1}-{second}"]
    pairs = tw.next_item_pairs(sequences, ids)
    tower, report = tw.train(vectors, index, pairs, tw.TowerSettings(epochs=30, batch=64))
    assert report["epoch_losses"][-1] < report["epoch_losses"][0]
    projected = tower.project(vectors)

    def mean_cosine(space, a, b, rows=slice(per_group - 5, per_group)):
        left = space[index[f"{a}-0"]:index[f"{a}-0"] + per_group][rows]
        right = space[index[f"{b}-0"]:index[f"{b}-0"] + per_group]
        return float((left @ right.T).mean())

    # Items never in a pair: their next topic is now closer than an unrelated one.
    before = mean_cosine(vectors, 0, 1) - mean_cosine(vectors, 0, 3)
    after = mean_cosine(projected, 0, 1) - mean_cosine(projected, 0, 3)
    assert after > before + 0.2
    assert mean_cosine(projected, 2, 3) > mean_cosine(projected, 2, 1)
