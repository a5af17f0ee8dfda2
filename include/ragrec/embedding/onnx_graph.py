"""ONNX graphs of BERT-family transformers, built from their safetensors weights with the
``onnx`` package: no torch, no tracing, nothing fetched.

The graph is the transformer as Hugging Face's ``BertModel`` computes it - embeddings
(word + absolute position + token type, LayerNorm), then per layer self-attention (scaled
dot product, padding masked out) and the feed-forward block (exact, erf GELU), each followed
by a residual LayerNorm - with the weights as initializers. ``head="hidden"`` outputs the
last hidden state ``[batch, tokens, hidden]`` (what a bi-encoder pools); ``head="score"``
adds ``BertForSequenceClassification``'s pooler (tanh of the first token's projection) and
classifier, outputting ``logits [batch, labels]`` (a cross-encoder's raw score).

Inputs: ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, ``[batch, tokens]``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

OPSET = 17
GRAPH_VERSION = "bert-graph-1"  # part of every cache key: a changed builder rebuilds
HEADS = ("hidden", "score")
MASKED = -1.0e9  # added to the attention scores of padding positions


class GraphError(ValueError):
    pass


def _load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    path = model_dir / "model.safetensors"
    if not path.is_file():
        raise GraphError(f"{model_dir} has no model.safetensors (a torch-free ONNX graph is "
                         "built from safetensors weights only)")
    return load_file(str(path))


def _config(model_dir: Path) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    kind = config.get("model_type")
    if kind not in ("bert",):
        raise GraphError(f"{model_dir}: model type {kind!r}; the ONNX builder knows bert")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise GraphError(f"{model_dir}: only absolute position embeddings are supported")
    if config.get("hidden_act", "gelu") != "gelu":
        raise GraphError(f"{model_dir}: activation {config.get('hidden_act')!r}; the ONNX "
                         "builder knows gelu")
    return config


class _Builder:
    """Nodes and initializers of one graph; ``op`` adds a node and returns its output."""

    def __init__(self, weights: dict[str, np.ndarray], prefix: str):
        self.weights, self.prefix = weights, prefix
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def weight(self, key: str, transpose: bool = False) -> str:
        from onnx import numpy_helper

        array = self.weights[self.prefix + key] if self.prefix + key in self.weights \
            else self.weights[key]
        array = np.ascontiguousarray(array.T if transpose else array, dtype=np.float32)
        name = (key + ".T") if transpose else key
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def constant(self, name: str, value, dtype=np.int64) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        from onnx import helper

        self._count += 1
        output = output or f"{kind.lower()}_{self._count}"
        self.nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    def linear(self, x: str, key: str) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.weight(f"{key}.weight", True)]),
                               self.weight(f"{key}.bias")])

    def layer_norm(self, x: str, key: str, epsilon: float) -> str:
        return self.op("LayerNormalization",
                       [x, self.weight(f"{key}.weight"), self.weight(f"{key}.bias")],
                       axis=-1, epsilon=epsilon)


def build_graph(model_dir: Path, head: str = "hidden"):
    """The ``onnx.ModelProto`` of the transformer in ``model_dir`` (see the module's doc)."""
    import onnx
    from onnx import TensorProto, helper

    if head not in HEADS:
        raise GraphError(f"head {head!r}: one of {HEADS}")
    model_dir = Path(model_dir)
    config = _config(model_dir)
    weights = _load_weights(model_dir)
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    if prefix + "embeddings.word_embeddings.weight" not in weights:
        raise GraphError(f"{model_dir}: no BERT embeddings among the weights")
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    width = hidden // heads
    epsilon = float(config.get("layer_norm_eps", 1e-12))
    b = _Builder(weights, prefix)

    # Embeddings: word + position (the first `tokens` rows) + token type, then LayerNorm.
    tokens = b.op("Gather", [b.op("Shape", ["input_ids"]), b.constant("one", [1])])
    positions = b.op("Slice", [b.weight("embeddings.position_embeddings.weight"),
                               b.constant("zero", [0]), tokens, b.constant("axis0", [0])])
    x = b.op("Add", [b.op("Add", [
        b.op("Gather", [b.weight("embeddings.word_embeddings.weight"), "input_ids"]),
        positions]),
        b.op("Gather", [b.weight("embeddings.token_type_embeddings.weight"),
                        "token_type_ids"])])
    x = b.layer_norm(x, "embeddings.LayerNorm", epsilon)

    # Padding: a large negative bias on the scores of masked keys, [batch, 1, 1, tokens].
    mask = b.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = b.op("Mul", [b.op("Sub", [b.constant("f_one", 1.0, np.float32), mask]),
                        b.constant("masked", MASKED, np.float32)])
    bias = b.op("Unsqueeze", [bias, b.constant("axes12", [1, 2])])
    split = b.constant("split_heads", [0, 0, heads, width])
    merge = b.constant("merge_heads", [0, 0, hidden])
    scale = b.constant("scale", 1.0 / math.sqrt(width), np.float32)
    root_two = b.constant("root_two", math.sqrt(2.0), np.float32)
    half = b.constant("half", 0.5, np.float32)
    one = "f_one"

    for layer in range(int(config["num_hidden_layers"])):
        key = f"encoder.layer.{layer}"

        def project(source: str, name: str, perm: list[int], _key: str = key) -> str:
            flat = b.linear(source, f"{_key}.attention.self.{name}")
            return b.op("Transpose", [b.op("Reshape", [flat, split])], perm=perm)

        query = project(x, "query", [0, 2, 1, 3])
        keys = project(x, "key", [0, 2, 3, 1])
        values = project(x, "value", [0, 2, 1, 3])
        scores = b.op("Add", [b.op("Mul", [b.op("MatMul", [query, keys]), scale]), bias])
        context = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), values])
        context = b.op("Reshape", [b.op("Transpose", [context], perm=[0, 2, 1, 3]), merge])
        attended = b.linear(context, f"{key}.attention.output.dense")
        x = b.layer_norm(b.op("Add", [attended, x]), f"{key}.attention.output.LayerNorm",
                         epsilon)
        inner = b.linear(x, f"{key}.intermediate.dense")
        inner = b.op("Mul", [b.op("Mul", [inner, half]),
                             b.op("Add", [b.op("Erf", [b.op("Div", [inner, root_two])]), one])])
        out = b.linear(inner, f"{key}.output.dense")
        x = b.layer_norm(b.op("Add", [out, x]), f"{key}.output.LayerNorm", epsilon)

    if head == "hidden":
        b.op("Identity", [x], "last_hidden_state")
        output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                               ["batch", "tokens", hidden])
    else:
        if "classifier.weight" not in weights:
            raise GraphError(f"{model_dir}: no classifier among the weights (not a "
                             "cross-encoder)")
        first = b.op("Gather", [x, b.constant("first", 0)], axis=1)
        pooled = b.op("Tanh", [b.linear(first, "pooler.dense")])
        b.op("Add", [b.op("MatMul", [pooled, b.weight("classifier.weight", True)]),
                     b.weight("classifier.bias")], "logits")
        labels = int(weights["classifier.weight"].shape[0])
        output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels])

    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
              for name in ("input_ids", "attention_mask", "token_type_ids")]
    graph = helper.make_graph(b.nodes, f"ragrec-{head}", inputs, [output], b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ragrec", producer_version=GRAPH_VERSION)
    model.ir_version = min(model.ir_version, 9)  # what ONNX Runtime 1.2x reads
    onnx.checker.check_model(model, full_check=False)
    return model


def write_graph(model_dir: Path, target: Path, head: str = "hidden") -> Path:
    """Builds the graph and writes it to ``target`` (atomically: a partial file never
    passes for a graph)."""
    import onnx

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    onnx.save_model(build_graph(model_dir, head), str(partial))
    partial.replace(target)
    return target
