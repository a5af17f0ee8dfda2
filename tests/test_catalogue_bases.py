"""The catalogue's real jars (``scripts/test`` installs the int8 ones with ``ragrec models
install-base``): each installed base encodes with the pooling and the query / passage
prefixes its authors publish, checked against a reference computed here with PyTorch's
BERT over the weights read out of the jar's graph (pooling and prefixes written out in the
test, from the model cards, not read from the catalogue record); a wrong pooling or prefix
would be far off (measured: cosine 0.81-0.96, the right one 0.994-0.998)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import catalogue_base as installed
from ragrec.embedding import bases

# As the model cards publish them: (pooling, query prefix, passage prefix).
PUBLISHED = {
    "bge-small-en-v15-q": ("cls", "Represent this sentence for searching relevant passages: ",
                           ""),
    "e5-small-v2-q": ("mean", "query: ", "passage: "),
    "bge-small-zh-v15-q": ("cls", "为这个句子生成表示以用于检索相关文章：", ""),
}
TEXTS = ["how do I reset the vpn token", "Hotels are booked through the travel desk.",
         "出差住宿标准是多少？", "员工出差时，住宿费用按城市等级报销。"]


def reference(folder, texts: list[str], pooling: str, prefix: str) -> np.ndarray:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    from ragrec.embedding.onnx_weights import trainable_dir

    model = AutoModel.from_pretrained(str(trainable_dir(folder)), local_files_only=True).eval()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = []
    for text in texts:
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([tokenizer.encode(prefix + text).ids])
                           ).last_hidden_state[0]
        vector = hidden[0] if pooling == "cls" else hidden.mean(0)
        rows.append((vector / vector.norm()).numpy())
    return np.array(rows)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_base_pools_and_prefixes_as_its_authors_publish(name):
    from ragrec.embedding import encoder_for

    folder = installed(name)
    pooling, query_prefix, passage_prefix = PUBLISHED[name]
    encoder = encoder_for(folder, "onnx")
    assert encoder.dims == bases.CATALOGUE[name].dims
    for role, prefix in (("query", query_prefix), ("document", passage_prefix)):
        vectors = encoder.embed(TEXTS, role=role).vectors
        assert (vectors * reference(folder, TEXTS, pooling, prefix)).sum(1).min() > 0.985
        other = "mean" if pooling == "cls" else "cls"
        assert (vectors * reference(folder, TEXTS, other, prefix)).sum(1).max() < 0.985


def test_the_chinese_base_reads_chinese_and_the_english_one_does_not():
    """The same Chinese question over a relevant and an unrelated Chinese passage: the
    Chinese base separates them by a wide margin (measured 0.42), the bundled English
    MiniLM hardly at all (0.05: most Chinese characters are one unknown word piece to it)."""
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir

    question = "出差的住宿费用怎么报销？"
    passages = ["员工出差时，住宿费用按城市等级标准报销，需提供发票。",
                "打印机卡纸时，请先关闭电源再取出纸张。"]

    def margin(encoder) -> float:
        query = encoder.embed([question], role="query").vectors
        relevant, unrelated = (encoder.embed(passages).vectors @ query.T).ravel()
        return float(relevant - unrelated)

    assert margin(encoder_for(installed("bge-small-zh-v15-q"), "onnx")) > 0.3
    assert margin(encoder_for(base_model_dir(), "onnx")) < 0.1
