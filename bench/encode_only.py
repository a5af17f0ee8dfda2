"""Pure model encoding of the chunks ragrec makes from a folder: the ingest benchmark's
denominator. Parsing and chunking are done first and not timed; then sentence-transformers
encodes every chunk in this one process at the best batch size (chosen on a sample).

    python -m bench.encode_only FOLDER   -> one JSON line
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from ragrec.chunking import Chunker, ModelTokenizer
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.parsing import parse_document
    from ragrec.records import Quarantined
    from ragrec.sources import LocalSource

    source = LocalSource(Path(sys.argv[1]))
    chunker = Chunker(ModelTokenizer(base_model_dir()))
    texts = []
    for obj in source.list():
        parsed = parse_document(obj, source.read(obj))
        if not isinstance(parsed, Quarantined):
            texts.extend(c.embedding_text for c in chunker.chunk(parsed))
    started = time.perf_counter()
    model = SentenceTransformer(str(base_model_dir()), local_files_only=True)
    load_seconds = time.perf_counter() - started
    sample = texts[:: max(1, len(texts) // 768)]
    trials = {}
    for batch_size in (16, 32, 64, 128):
        started = time.perf_counter()
        model.encode(sample, batch_size=batch_size, normalize_embeddings=True)
        trials[batch_size] = time.perf_counter() - started
    best = min(trials, key=trials.get)
    started = time.perf_counter()
    model.encode(texts, batch_size=best, normalize_embeddings=True)
    seconds = time.perf_counter() - started
    print(json.dumps({"chunks": len(texts), "best_batch_size": best, "encode_seconds": seconds,
                      "model_load_seconds": load_seconds,
                      "batch_trials": {str(k): round(v, 3) for k, v in trials.items()}}))


if __name__ == "__main__":
    main()
