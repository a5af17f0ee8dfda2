"""BERT weights read back out of an ONNX graph - the inverse of ``onnx_graph`` - so a base
encoder that ships only a graph (the ``dev.langchain4j`` jars of ``embedding.bases``) can be
fine-tuned: the trainers need PyTorch weights, and this writes them as a Hugging Face BERT
folder (``config.json`` + ``model.safetensors``) with numpy, ``onnx`` and ``safetensors``
only (no torch).

Graphs read: PyTorch's own export (linear weights as anonymous ``onnx::MatMul_N``
initializers, LayerNorm spelled out), its dynamic int8 quantisation (``MatMulInteger`` over
per-column int8 weights, ``DequantizeLinear`` embeddings: dequantised here, weight =
(q - zero point) x scale), and ``onnx_graph``'s (``KEY.weight.T``, ``LayerNormalization``).
A linear weight is named by the bias its product is added to; heads, widths and the
LayerNorm epsilon are read from the graph's constants. ``trainable_dir`` builds the folder
once per graph into ``<cache>/trainable/`` (beside the tokenizer, the sentence-transformers
module configs and the base's prefixes); a folder that has weights already is its own.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
from pathlib import Path

import numpy as np

from ragrec.config import cache_dir

WEIGHTS_VERSION = "onnx-weights-1"  # part of the cache key: a changed reader rebuilds
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")
_SPECIAL = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
            "mask_token": "[MASK]", "unk_token": "[UNK]"}
# Files of a sentence-transformers folder that describe how it reads text and pools (not
# its weights): carried over from the base into the trainable folder.
_MODULE_FILES = ("modules.json", "sentence_bert_config.json", "prefixes.json",
                 "tokenizer.json", "1_Pooling", "2_Normalize")


class WeightsError(ValueError):
    pass


def _arrays(model) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Initializers and Constant node outputs by name, and each tensor's producing node."""
    from onnx import TensorProto, helper, numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            value = helper.get_attribute_value(node.attribute[0])
            values[node.output[0]] = numpy_helper.to_array(value) \
                if isinstance(value, TensorProto) else np.asarray(value)
    producers = {out: node for node in model.graph.node for out in node.output}
    return values, producers


def _dequantised(values: dict, base: str) -> np.ndarray:
    quantised = values[f"{base}_quantized"].astype(np.float32)
    zero = values[f"{base}_zero_point"].astype(np.float32)
    return (quantised - zero) * values[f"{base}_scale"].astype(np.float32)


def _bias_of(output: str, consumers: dict, values: dict) -> str | None:
    """The ``*.bias`` initializer added to a matrix product (through its int8 rescaling:
    Cast, Mul), following the product forward."""
    frontier = [output]
    for _depth in range(4):
        following = []
        for tensor in frontier:
            for node in consumers.get(tensor, ()):
                if node.op_type == "Add":
                    bias = [i for i in node.input if i.endswith(".bias") and i in values]
                    if bias:
                        return bias[0]
                if node.op_type in ("Cast", "Mul", "Add"):
                    following += list(node.output)
        frontier = following
    return None


def read_bert(graph: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, state dict) of the BERT encoder in ``graph``: the ``BertModel`` keys
    (``embeddings.*``, ``encoder.layer.N.*``) as float32 arrays, linear weights [out, in]."""
    import onnx

    model = onnx.load(str(graph))
    values, producers = _arrays(model)
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    # An exporter may name the encoder's parameters under a module path ("bert.", "0.auto_
    # model."): the BertModel keys are what follows it.
    words = next((n for n in values if n.endswith("embeddings.word_embeddings.weight")
                  or n.endswith("embeddings.word_embeddings.weight_quantized")), None)
    if words is None:
        raise WeightsError(f"{graph.name}: no BERT word embeddings among its initializers")
    prefix = words[:words.index("embeddings.word_embeddings.weight")]
    state: dict[str, np.ndarray] = {}
    for name, array in values.items():
        key = name.removeprefix(prefix)
        if not (name.startswith(prefix) and key.startswith(("embeddings.", "encoder."))):
            continue
        if key.endswith((".weight", ".bias")):
            state[key] = array.astype(np.float32)
        elif key.endswith(".weight_quantized"):
            state[key.removesuffix("_quantized")] = _dequantised(
                values, name.removesuffix("_quantized"))
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "MatMulInteger") or node.input[1] not in values:
            continue
        source = node.input[1]
        if source.endswith(".weight.T"):  # onnx_graph's naming: the key is in the name
            key = source.removesuffix(".T").removeprefix(prefix)
            state[key] = np.ascontiguousarray(values[source].T)
            continue
        bias = _bias_of(node.output[0], consumers, values)
        if bias is None:
            raise WeightsError(f"{graph.name}: the product with {source} is added to no bias; "
                               "not a BERT graph this reader knows")
        weight = _dequantised(values, source.removesuffix("_quantized")) \
            if node.op_type == "MatMulInteger" else values[source].astype(np.float32)
        state[bias.removeprefix(prefix).removesuffix(".bias") + ".weight"] = \
            np.ascontiguousarray(weight.T)
    return _config(model, values, producers, state), state


def _heads(model, values: dict, producers: dict, hidden: int) -> int:
    """Attention heads, from the [batch, tokens, heads, width] shape the query projection
    is reshaped to (a constant, or a Concat of constants): its heads, or hidden / width
    where the exporter wrote -1 for the heads."""
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        shape, entries = node.input[1], None
        if shape in values and values[shape].size == 4:
            entries = [int(v) for v in values[shape].reshape(-1)]
        concat = producers.get(shape)
        if concat is not None and concat.op_type == "Concat" and len(concat.input) == 4 \
                and all(i in values for i in concat.input[2:]):
            entries = [0, 0] + [int(values[i].reshape(-1)[0]) for i in concat.input[2:]]
        if entries is None:
            continue
        heads, width = entries[2:]
        if heads > 0 and heads * width == hidden:
            return heads
        if heads <= 0 and width > 0 and hidden % width == 0:
            return hidden // width
    raise WeightsError("cannot tell the number of attention heads from the graph")


def _epsilon(model, values: dict, producers: dict) -> float:
    for node in model.graph.node:
        if node.op_type == "LayerNormalization":
            return next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        if node.op_type == "Sqrt":  # spelled out: sqrt(variance + epsilon)
            added = producers.get(node.input[0])
            if added is not None and added.op_type == "Add":
                constant = [values[i] for i in added.input if i in values]
                if constant:
                    return float(constant[0].reshape(-1)[0])
    return 1e-12


def _config(model, values: dict, producers: dict, state: dict) -> dict:
    words = state["embeddings.word_embeddings.weight"]
    layers = {int(m.group(1)) for key in state if (m := _LAYER.match(key))}
    missing = [key for layer in layers for key in
               (f"encoder.layer.{layer}.attention.self.query.weight",
                f"encoder.layer.{layer}.intermediate.dense.weight",
                f"encoder.layer.{layer}.output.dense.weight") if key not in state]
    if not layers or missing or layers != set(range(len(layers))):
        raise WeightsError(f"incomplete BERT layers in the graph (missing {missing[:3]})")
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": int(words.shape[0]), "hidden_size": int(words.shape[1]),
        "num_hidden_layers": len(layers),
        "num_attention_heads": _heads(model, values, producers, int(words.shape[1])),
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.bias"].shape[0]),
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "layer_norm_eps": _epsilon(model, values, producers),
        "initializer_range": 0.02, "pad_token_id": 0,
        "position_embedding_type": "absolute", "ragrec_weights": WEIGHTS_VERSION}


def has_weights(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and any(
        (model_dir / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))


def write_trainable(model_dir: Path, out: Path) -> Path:
    """``model_dir``'s graph as a trainable folder at ``out``: the weights and config read
    from ``model.onnx``, the tokenizer and module configs copied."""
    from safetensors.numpy import save_file

    from ragrec.embedding.in_process import model_max_tokens

    config, state = read_bert(model_dir / "model.onnx")
    hidden = config["hidden_size"]
    # A bi-encoder's graph has no pooler (BertModel's tanh projection of the first token,
    # which only a cross-encoder started from these weights reads): identity, not random.
    state.setdefault("pooler.dense.weight", np.eye(hidden, dtype=np.float32))
    state.setdefault("pooler.dense.bias", np.zeros(hidden, dtype=np.float32))
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    lowercase = bool((tokenizer.get("normalizer") or {}).get("lowercase", False))
    max_length = model_max_tokens(model_dir) \
        if (model_dir / "sentence_bert_config.json").is_file() \
        else config["max_position_embeddings"]
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase,
         "model_max_length": max_length, **_SPECIAL}, indent=2))
    for name in _MODULE_FILES:
        source = model_dir / name
        if source.is_dir():
            shutil.copytree(source, out / name, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, out / name)
    return out


def trainable_dir(model_dir: Path) -> Path:
    """A folder the trainers can load for ``model_dir``: itself when it has weights, else
    the weights rebuilt from its ``model.onnx`` (once per graph, in the cache)."""
    model_dir = Path(model_dir)
    if has_weights(model_dir):
        return model_dir
    graph = model_dir / "model.onnx"
    if not graph.is_file():
        raise WeightsError(f"{model_dir} has neither weights nor model.onnx to train from")
    from ragrec.embedding.bases import sha256_of

    key = f"{sha256_of(graph)[:16]}-{sha256_of(model_dir / 'tokenizer.json')[:8]}"
    folder = cache_dir() / "trainable" / f"{key}-{WEIGHTS_VERSION}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "config.json").is_file():
            staging = folder.with_name(folder.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            write_trainable(model_dir, staging)
            staging.rename(folder)
    return folder
