"""The batch jobs the DAGs call: ingest in batches, rebuild behind the alias with a
retrieval gate, model rollout, recommendation catalogue sync, the Elasticsearch probe."""
