"""The local development stack, apart from the library workers import: the single-node
Elasticsearch (``es_node``), Airflow under a real scheduler (``scheduler_run``), the demo
(``quickstart``, ``demo_run``)."""
