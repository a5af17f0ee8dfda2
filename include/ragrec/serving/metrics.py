"""Prometheus text exposition for the model server (counters and histograms, no extra
dependency)."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(34), "")}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)
        self.texts = 0
        self.latency: dict[str, _Histogram] = {}
        self.batch_size = _Histogram(BATCH_BUCKETS)
        self.batch_seconds = _Histogram(LATENCY_BUCKETS)
        self.pairs = 0
        self.rerank_batch_size = _Histogram(BATCH_BUCKETS)
        self.swaps = 0
        self.model_info: dict[str, str] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency.setdefault(route, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.texts += size
            self.batch_size.observe(size)
            self.batch_seconds.observe(seconds)

    def rerank_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.pairs += size
            self.rerank_batch_size.observe(size)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines += ["# HELP ragrec_requests_total Requests by route and HTTP status.",
                      "# TYPE ragrec_requests_total counter"]
            for (route, status), count in sorted(self.requests.items()):
                lines.append(f"ragrec_requests_total{_labels({'route': route, 'status': status})}"
                             f" {count}")
            lines += ["# HELP ragrec_texts_embedded_total Texts encoded by the bi-encoder.",
                      "# TYPE ragrec_texts_embedded_total counter",
                      f"ragrec_texts_embedded_total {self.texts}",
                      "# HELP ragrec_model_swaps_total Completed model swaps.",
                      "# TYPE ragrec_model_swaps_total counter",
                      f"ragrec_model_swaps_total {self.swaps}",
                      "# HELP ragrec_model_info The model version being served.",
                      "# TYPE ragrec_model_info gauge",
                      f"ragrec_model_info{_labels(self.model_info)} 1"]
            lines += ["# HELP ragrec_request_seconds Request latency by route.",
                      "# TYPE ragrec_request_seconds histogram"]
            for route, histogram in sorted(self.latency.items()):
                lines += _histogram_lines("ragrec_request_seconds", histogram, {"route": route})
            lines += ["# HELP ragrec_batch_size Texts per model call (dynamic batching).",
                      "# TYPE ragrec_batch_size histogram"]
            lines += _histogram_lines("ragrec_batch_size", self.batch_size, {})
            lines += ["# HELP ragrec_batch_seconds Seconds per model call.",
                      "# TYPE ragrec_batch_seconds histogram"]
            lines += _histogram_lines("ragrec_batch_seconds", self.batch_seconds, {})
            lines += ["# HELP ragrec_pairs_reranked_total (query, passage) pairs scored.",
                      "# TYPE ragrec_pairs_reranked_total counter",
                      f"ragrec_pairs_reranked_total {self.pairs}",
                      "# HELP ragrec_rerank_batch_size Pairs per cross-encoder call (concurrent "
                      "requests merged).",
                      "# TYPE ragrec_rerank_batch_size histogram"]
            lines += _histogram_lines("ragrec_rerank_batch_size", self.rerank_batch_size, {})
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, histogram: _Histogram, labels: dict) -> list[str]:
    lines = []
    for bound, count in zip(histogram.buckets, histogram.counts, strict=True):
        lines.append(f"{name}_bucket{_labels({**labels, 'le': bound})} {count}")
    lines.append(f"{name}_bucket{_labels({**labels, 'le': '+Inf'})} {histogram.total}")
    lines.append(f"{name}_sum{_labels(labels)} {histogram.sum:.6f}")
    lines.append(f"{name}_count{_labels(labels)} {histogram.total}")
    return lines
