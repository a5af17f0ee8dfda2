"""Retrieval evaluation of model versions: fusion, tuning on train, reports."""
