"""The run folder: where each stage writes its outputs, and which stages are done.

Layout (DESIGN.md)::

    <output_dir>/<name>-<timestamp>/
      config.yaml  trajectories.jsonl  scores.jsonl  routing.jsonl  adapters/vN/  rl_iterations.jsonl  evaluation.jsonl
      metrics.jsonl  summary.json  report.md  compute.json  stages.json

``stages.json`` records each finished stage with its outputs. A stage counts as
done on resume only when it is recorded there and all its outputs still exist.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from prism_agents.config import RunConfig, load_config, to_yaml
from prism_agents.io import write_json_atomic, write_text_atomic

CONFIG_FILE = "config.yaml"
STAGES_FILE = "stages.json"


class RunFolder:
    """Paths and stage bookkeeping of one run."""

    def __init__(self, path: Path, config: RunConfig) -> None:
        self.path = path
        self.config = config

    @classmethod
    def create(cls, config: RunConfig, path: Path | None = None) -> RunFolder:
        """A new, empty run folder holding the resolved config: ``path``, or ``<output_dir>/<name>-<timestamp>``."""
        if path is None:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            root = Path(config.output_dir)
            path = root / f"{config.name}-{stamp}"
            suffix = 1
            while path.exists():
                suffix += 1
                path = root / f"{config.name}-{stamp}-{suffix}"
        path.mkdir(parents=True)
        write_text_atomic(path / CONFIG_FILE, to_yaml(config))
        return cls(path, config)

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder, with the config it was started with."""
        folder = Path(path)
        config_file = folder / CONFIG_FILE
        if not config_file.is_file():
            raise FileNotFoundError(f"{folder} is not a run folder: {CONFIG_FILE} is missing")
        return cls(folder, load_config(config_file))

    # Well-known outputs -------------------------------------------------------------

    @property
    def trajectories(self) -> Path:
        return self.path / "trajectories.jsonl"

    @property
    def scores(self) -> Path:
        return self.path / "scores.jsonl"

    @property
    def routing(self) -> Path:
        return self.path / "routing.jsonl"

    @property
    def rl_iterations(self) -> Path:
        return self.path / "rl_iterations.jsonl"

    @property
    def evaluation(self) -> Path:
        return self.path / "evaluation.jsonl"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def compute(self) -> Path:
        return self.path / "compute.json"

    def adapter(self, version: int) -> Path:
        """Folder of adapter version ``version`` (peft format)."""
        return self.path / "adapters" / f"v{version}"

    def latest_adapter_version(self) -> int | None:
        """The highest saved adapter version, or None before any."""
        versions = [
            int(child.name[1:])
            for child in (self.path / "adapters").glob("v*")
            if child.name[1:].isdigit() and (child / "adapter_config.json").is_file()
        ]
        return max(versions, default=None)

    # Stage bookkeeping --------------------------------------------------------------

    def _stages(self) -> dict[str, Any]:
        state_file = self.path / STAGES_FILE
        return json.loads(state_file.read_text()) if state_file.is_file() else {}

    def stage_done(self, stage: str) -> bool:
        """Whether ``stage`` finished and every output it recorded still exists."""
        record = self._stages().get(stage)
        return record is not None and all((self.path / output).exists() for output in record["outputs"])

    def mark_done(self, stage: str, outputs: list[Path], result: dict[str, Any], **provenance: str) -> None:
        """Record that ``stage`` finished, with its outputs and its summary ``result``; ``provenance``
        adds ``fingerprint`` (of a shareable stage) and ``shared_from`` (the run it was copied from)."""
        stages = self._stages()
        stages[stage] = {
            "finished_at": dt.datetime.now().isoformat(timespec="seconds"),
            "outputs": [str(output.relative_to(self.path)) for output in outputs],
            "result": result,
            **provenance,
        }
        write_json_atomic(self.path / STAGES_FILE, stages)

    def stage_record(self, stage: str) -> dict[str, Any]:
        """What ``stages.json`` holds for a finished stage (outputs, result, fingerprint, shared_from)."""
        return self._stages()[stage]

    def stage_result(self, stage: str) -> dict[str, Any]:
        """The summary a finished stage recorded."""
        return self.stage_record(stage)["result"]
