"""The local development stack, apart from the library workers import: Elasticsearch, one
node or a cluster (``es_node``); Airflow under a real scheduler, standalone or with Celery
workers on a Redis broker (``local_airflow``, ``redis_server``, ``worker_hostname``, driven
by ``scheduler_run``); the demo (``quickstart``, ``demo_run``)."""
