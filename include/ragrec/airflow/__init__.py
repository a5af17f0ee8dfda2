"""Airflow glue: hooks and task callables. Importing this package needs Airflow installed."""
