"""``metrics.jsonl``: one JSON line per logged step, each naming its stage (and split where it has one)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends metric records to a run's ``metrics.jsonl``; each line is flushed as written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def log(self, stage: str, step: int, values: dict[str, Any], split: str | None = None) -> None:
        """Append one record: ``{"stage", "step", "split"?, "time", **values}``."""
        record: dict[str, Any] = {"stage": stage, "step": step}
        if split is not None:
            record["split"] = split
        record["time"] = round(time.time(), 3)
        record.update(values)
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
