"""Assets the DAGs publish and schedule on. An event's ``extra`` names the alias, the
physical index behind it and the model version, so consumers act on the right index."""

from __future__ import annotations

from airflow.sdk import Asset

KB_INDEX = Asset(name="ragrec_kb_index", uri="x-ragrec://elasticsearch/kb-index")
