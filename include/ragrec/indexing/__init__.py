"""Elasticsearch side of ingestion: index layout, versions behind an alias, bulk writes,
what the index already holds, and quarantine records."""
