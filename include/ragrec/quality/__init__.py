"""Data quality: Great Expectations suites over chunk batches and the live index, and the
alerts a failing suite sends."""
