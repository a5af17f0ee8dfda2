# The two set-up commands (see README): `make demo` and `make test`.
.PHONY: demo test test-distributed lint es-start es-stop bench

# `make demo UI=1` also starts the Airflow UI over the demo's runs (stop: ragrec demo --stop-ui).
demo:
	scripts/demo $(if $(UI),--ui,)

test:
	scripts/test

# The Elasticsearch cluster and Celery worker tests (fault injection; ~10 min).
test-distributed:
	scripts/test-distributed

lint:
	scripts/bootstrap && .venv/bin/ruff check include dags tests bench

es-start:
	scripts/bootstrap && .venv/bin/ragrec es start

es-stop:
	scripts/bootstrap && .venv/bin/ragrec es stop

bench:
	bench/run
