"""ragrec: keeps an enterprise retrieval layer (Elasticsearch + custom models) fresh."""

__version__ = "0.1.0"
