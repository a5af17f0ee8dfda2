"""SQLAlchemy connect arguments for an Airflow metadata DB on SQLite that several processes
share (``airflow standalone`` plus the CLI calls made against it): wait up to a minute for
another writer's lock instead of Python's default five seconds, which a busy scheduler on two
cores outlasts. Named by ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS``."""

CONNECT_ARGS = {"timeout": 60.0}
