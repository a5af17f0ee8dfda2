"""Retrieval evaluation: BEIR datasets, document-level metrics, evaluation runs of search specs
(tuned on train), the golden set the gates score, reports."""
