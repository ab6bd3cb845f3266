"""Metric sinks besides ``metrics.jsonl``: TensorBoard event files, Weights & Biases and MLflow runs.

Each sink receives numbers already named ``<stage>/<split>/<name>`` and the step they belong to. The
Weights & Biases and MLflow packages are optional: ``logging`` checks at config load that a sink
turned on has its package.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from prism_agents.config.schema import LoggingConfig

TENSORBOARD_FOLDER = "tensorboard"
"""Folder of the run folder that holds the TensorBoard event files."""


class MetricSink(ABC):
    """Somewhere named numbers are sent, step by step."""

    @abstractmethod
    def write(self, values: dict[str, float], step: int) -> None:
        """Record ``values`` (name -> number) at ``step``."""

    @abstractmethod
    def close(self) -> None:
        """Flush what is buffered and release the sink."""


class TensorBoardSink(MetricSink):
    """Scalars in TensorBoard event files under ``log_dir``."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self._writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        self._writer.close()


class WandbSink(MetricSink):
    """A Weights & Biases run named after the run folder."""

    def __init__(self, project: str, run_name: str, config: dict[str, Any]) -> None:
        wandb = importlib.import_module("wandb")
        self._run = wandb.init(project=project, name=run_name, config=config)

    def write(self, values: dict[str, float], step: int) -> None:
        # Stages restart their step count, so the step travels as a value and W&B keeps its own counter.
        self._run.log({**values, "stage_step": step})

    def close(self) -> None:
        self._run.finish()


class MlflowSink(MetricSink):
    """An MLflow run named after the run folder, in the configured experiment."""

    def __init__(self, experiment: str, run_name: str, config: dict[str, Any]) -> None:
        self._mlflow = importlib.import_module("mlflow")
        self._mlflow.set_experiment(experiment)
        self._mlflow.start_run(run_name=run_name)
        self._mlflow.log_params(config)

    def write(self, values: dict[str, float], step: int) -> None:
        self._mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        self._mlflow.end_run()


def build_sinks(settings: LoggingConfig, run_folder: Path, flat_config: dict[str, Any]) -> list[MetricSink]:
    """The sinks ``settings`` turns on for the run in ``run_folder`` (``flat_config``: its config, dotted keys)."""
    sinks: list[MetricSink] = []
    if settings.tensorboard:
        sinks.append(TensorBoardSink(run_folder / TENSORBOARD_FOLDER))
    if settings.wandb:
        sinks.append(WandbSink(settings.wandb_project, run_folder.name, flat_config))
    if settings.mlflow:
        sinks.append(MlflowSink(settings.mlflow_experiment, run_folder.name, flat_config))
    return sinks
