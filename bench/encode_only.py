"""Pure model encoding of the chunks ragrec makes from a folder: the ingest benchmark's
denominator. Parsing and chunking are done first and not timed; then the model encodes every
chunk in this one process at the best batch size (chosen on a sample), on one runtime:
``torch`` (sentence-transformers) or ``onnx`` / ``onnx-int8`` (ONNX Runtime on the graph
ragrec builds, the runtime ingest uses by default), so ingest can be divided by the floor of
its own runtime.

    python -m bench.encode_only FOLDER [--runtime torch|onnx|onnx-int8]   -> one JSON line
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _encoder(runtime: str, model_dir: Path):
    """(load it, encode(texts, batch_size)) for the runtime."""
    if runtime == "torch":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir), local_files_only=True)
        return lambda texts, size: model.encode(texts, batch_size=size,
                                                normalize_embeddings=True)
    from ragrec.embedding.onnx_runtime import OnnxEmbedder

    model = OnnxEmbedder(model_dir, quantize=runtime == "onnx-int8")
    model.embed(["load the session"])

    def encode(texts, size):
        model.batch_size = size
        return model.embed(texts).vectors

    return encode


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--runtime", choices=("torch", "onnx", "onnx-int8"), default="torch")
    args = parser.parse_args()
    from ragrec.chunking import Chunker, ModelTokenizer
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.parsing import parse_document
    from ragrec.records import Quarantined
    from ragrec.sources import LocalSource

    source = LocalSource(Path(args.folder))
    chunker = Chunker(ModelTokenizer(base_model_dir()))
    texts = []
    for obj in source.list():
        parsed = parse_document(obj, source.read(obj))
        if not isinstance(parsed, Quarantined):
            texts.extend(c.embedding_text for c in chunker.chunk(parsed))
    started = time.perf_counter()
    encode = _encoder(args.runtime, base_model_dir())
    load_seconds = time.perf_counter() - started
    sample = texts[:: max(1, len(texts) // 768)]
    trials = {}
    for batch_size in (8, 16, 32, 64, 128):
        started = time.perf_counter()
        encode(sample, batch_size)
        trials[batch_size] = time.perf_counter() - started
    best = min(trials, key=trials.get)
    started = time.perf_counter()
    encode(texts, best)
    seconds = time.perf_counter() - started
    print(json.dumps({"runtime": args.runtime, "chunks": len(texts), "best_batch_size": best,
                      "encode_seconds": seconds,
                      "model_load_seconds": load_seconds,
                      "batch_trials": {str(k): round(v, 3) for k, v in trials.items()}}))


if __name__ == "__main__":
    main()
