"""Places for what collaboration cannot see yet.

Collaborative scores come from what people consumed together, so an item few people have
consumed (a new document) gets none, or too little to ever reach a list. A list of ``k``
therefore keeps its last ``slots`` places for the best *cold* candidates - items with at
most ``cold_users`` consumers whose content is close to what the user read (their content
score, min-max scaled over the user's candidates, at least ``cold_min_content``); the
places stay with the main ranking when there are no such candidates. The served
recommender and the offline benchmark both use ``with_cold_slots``."""

from __future__ import annotations


def with_cold_slots(ranked: list[str], cold: list[str], k: int, slots: int) -> list[str]:
    """The first ``k`` of ``ranked`` with its last ``slots`` places given to the best of
    ``cold`` (in its order) not already in the list."""
    if slots <= 0:
        return ranked[:k]
    head = ranked[:max(k - slots, 0)]
    taken = set(head)
    extra = [item for item in cold if item not in taken][:slots]
    taken.update(extra)
    rest = [item for item in ranked[len(head):] if item not in taken]
    return head + extra + rest[:k - len(head) - len(extra)]
