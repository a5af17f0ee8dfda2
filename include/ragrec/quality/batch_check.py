"""The chunk suite as a gate inside ingestion: each window of embedded chunks is validated
before it is written, and the documents behind failing rows are quarantined (stage
``validate``, retried on the next run) instead of reaching the index."""

from __future__ import annotations

from ragrec.quality.expectations import ChunkRules, chunk_suite
from ragrec.quality.runner import QualityReport, QualityRunner
from ragrec.records import chunk_id


class BatchValidator:
    def __init__(self, rules: ChunkRules, runner: QualityRunner | None = None):
        self.rules = rules
        self.runner = runner or QualityRunner()
        self.reports: list[QualityReport] = []

    def __call__(self, window, model_version: str) -> dict[str, str]:
        """doc_id -> reason for every document with a chunk that fails the suite."""
        from ragrec.quality.frames import chunk_frame

        rows = [{"chunk_id": chunk_id(w.obj.doc_id, c.chunk_no), "doc_id": w.obj.doc_id,
                 "token_count": c.token_count, "model_token_count": c.model_token_count,
                 "model_version": model_version, "vector": vector}
                for w in window for c, vector in zip(w.chunks, w.vectors, strict=True)]
        if not rows:
            return {}
        report = self.runner.validate(chunk_frame(rows), chunk_suite("chunk-batch", self.rules))
        self.reports.append(report)
        bad: dict[str, str] = {}
        for failure in report.failures:
            reason = f"{failure.expectation}" + (f" on {failure.column}" if failure.column
                                                  else "")
            for doc_id in failure.doc_ids:
                bad.setdefault(doc_id, reason)
        if not report.success and not bad:
            # A table-level failure names no rows: nothing in this window can be trusted.
            reason = "; ".join(f.expectation for f in report.failures)
            bad = {w.obj.doc_id: reason for w in window}
        return bad
