"""A ranking's quality on held-out traffic, without judged queries: the counterfactual
nDCG@10 of the clicked documents under the ranking, each document's gain its
inverse-propensity-weighted click rate (``labels``), so a document users clicked from
position 8 counts as much as one clicked from the top. Per query, the ideal is the same
gains in order; the mean over queries comes with a 95 % confidence interval (normal,
1.96 standard errors), and two rankings of the same traffic are compared pair by pair.

What it cannot see: a document the logged rankings never showed has no clicks, so a
candidate that surfaces it earns nothing for it. The estimate favours the logged
rankings' neighbourhood; the exploration slice widens it a little."""

from __future__ import annotations

import math
import statistics

from ragrec.eval.metrics import judged_ranking, ndcg_at

Z95 = 1.96


def per_query(rankings: dict[str, list[str]], qrels: dict[str, dict[str, float]]
              ) -> dict[str, float]:
    """Query -> nDCG@10 with the click gains (a ranking of chunk hits' document ids is
    collapsed to documents, matched to the labels' ids as ``eval.metrics`` matches qrels)."""
    scores = {}
    for query, gains in qrels.items():
        if query in rankings:
            scores[query] = ndcg_at(judged_ranking(rankings[query], gains), gains)
    return scores


def summary(scores: dict[str, float]) -> dict:
    """Mean with its 95 % interval over queries."""
    values = list(scores.values())
    if not values:
        return {"ndcg@10": 0.0, "ci95": [0.0, 0.0], "queries": 0}
    mean = sum(values) / len(values)
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"ndcg@10": round(mean, 4),
            "ci95": [round(mean - Z95 * error, 4), round(mean + Z95 * error, 4)],
            "queries": len(values)}


def compare(candidate: dict[str, float], live: dict[str, float]) -> dict:
    """The candidate's gain over the live ranking on the same queries, with its 95 %
    interval (paired: the per-query differences)."""
    shared = sorted(set(candidate) & set(live))
    differences = [candidate[q] - live[q] for q in shared]
    if not differences:
        return {"gain": 0.0, "ci95": [0.0, 0.0], "queries": 0}
    mean = sum(differences) / len(differences)
    error = statistics.stdev(differences) / math.sqrt(len(differences)) \
        if len(differences) > 1 else 0.0
    return {"gain": round(mean, 4),
            "ci95": [round(mean - Z95 * error, 4), round(mean + Z95 * error, 4)],
            "queries": len(differences)}


def verdict(candidate: dict[str, dict[str, float]], live: dict[str, dict[str, float]],
            margin: float) -> dict:
    """The label-free gate's decision from per-query figures by mode (``served`` and
    ``dense``): refused only when the candidate falls more than ``margin`` below the live
    version under the served spec **and** in its dense ranking. The served spec's figure
    alone favours the version that logged the traffic (its own ranking showed every
    clicked document): on SciFact's click log a candidate that judged queries scored
    +0.016 better (hybrid, the same held-out queries) scored -0.031 there, and +0.002 in
    the dense ranking, which the logging version did not serve alone."""
    gains = {mode: compare(candidate[mode], live[mode]) for mode in ("served", "dense")
             if mode in candidate and mode in live}
    worse = [mode for mode, gain in gains.items() if gain["gain"] < -margin]
    passed = not gains or len(worse) < len(gains)
    return {"passed": passed, "gains": gains, "margin": margin,
            "worse_in": worse}
