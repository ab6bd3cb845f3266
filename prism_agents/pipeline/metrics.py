"""``metrics.jsonl``: one JSON line per logged step, each naming its stage (and split where it has one).

The same records go to the sinks that ``logging`` turns on (TensorBoard, Weights & Biases, MLflow), where
each number is named ``<stage>/<split>/<name>`` (``<stage>/<name>`` without a split).
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prism_agents.pipeline.metric_sinks import MetricSink


def metric_names(stage: str, split: str | None, values: dict[str, Any]) -> dict[str, float]:
    """The numeric ``values`` under their sink names ``<stage>/<split>/<name>``; other values are left out."""
    prefix = f"{stage}/{split}/" if split is not None else f"{stage}/"
    return {
        prefix + name: float(value)
        for name, value in values.items()
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and name != "step"
    }


class MetricsLog:
    """Appends metric records to a run's ``metrics.jsonl`` (each line flushed as written) and to the sinks,
    which ``open_sinks`` opens at the first record (a command that logs nothing opens none)."""

    def __init__(self, path: Path, open_sinks: Callable[[], list[MetricSink]] = list) -> None:
        self.path = path
        self._open_sinks = open_sinks
        self._sinks: list[MetricSink] | None = None

    def log(self, stage: str, step: int, values: dict[str, Any], split: str | None = None) -> None:
        """Append one record: ``{"stage", "step", "split"?, "time", **values}``."""
        record: dict[str, Any] = {"stage": stage, "step": step}
        if split is not None:
            record["split"] = split
        record["time"] = round(time.time(), 3)
        record.update(values)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
        if self._sinks is None:
            self._sinks = self._open_sinks()
        named = metric_names(stage, split, values)
        for sink in self._sinks:
            sink.write(named, step)

    def close(self) -> None:
        """Flush and close the sinks opened so far."""
        for sink in self._sinks or []:
            sink.close()
        self._sinks = None
