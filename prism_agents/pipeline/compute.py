"""``compute.json``: wall clock, work done and estimated FLOPs per stage.

FLOP estimates follow the usual dense-transformer rule with N = the base
model's parameter count: 2N per token processed in a forward pass (prompt or
generated tokens, or tokens scored without a gradient) and 6N per trained or
probed token (forward plus backward). They are estimates of the arithmetic, not
measurements.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from prism_agents.io import write_json_atomic

FORWARD_FLOPS_PER_PARAMETER = 2
TRAIN_FLOPS_PER_PARAMETER = 6


@dataclass
class StageCompute:
    """What one stage spent."""

    wall_clock_s: float = 0.0
    """Seconds from the stage's start to its end."""
    episodes: int = 0
    """Environment episodes played."""
    env_steps: int = 0
    """Environment steps taken."""
    prompt_tokens: int = 0
    """Prompt tokens sent to the generator."""
    generated_tokens: int = 0
    """Tokens generated."""
    trained_tokens: int = 0
    """Tokens in training sequences (forward + backward), padding excluded."""
    probed_tokens: int = 0
    """Tokens read by the gradient probe (forward + backward, no optimizer step), padding excluded."""
    scored_tokens: int = 0
    """Tokens read by a forward pass of the training-side model alone (e.g. the loss router), padding excluded."""
    generation_s: float = 0.0
    """Seconds spent in the generator's ``generate`` calls (rollouts)."""
    env_s: float = 0.0
    """Seconds spent waiting for environment resets and steps (rollouts)."""
    model_parameters: int = 0
    """N, the base model's parameter count the FLOP estimate uses (0 when no model was loaded)."""

    @property
    def estimated_flops(self) -> float:
        inference = FORWARD_FLOPS_PER_PARAMETER * (self.prompt_tokens + self.generated_tokens + self.scored_tokens)
        training = TRAIN_FLOPS_PER_PARAMETER * (self.trained_tokens + self.probed_tokens)
        return float(self.model_parameters * (inference + training))

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "estimated_flops": self.estimated_flops}


class ComputeLedger:
    """Per-stage compute of a run, kept in ``compute.json`` (earlier stages survive a resume)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    @contextmanager
    def stage(self, name: str) -> Iterator[StageCompute]:
        """Time a stage; the caller adds counts to the yielded record. Saved when the stage ends normally."""
        record = StageCompute()
        started = time.perf_counter()
        yield record
        record.wall_clock_s = round(time.perf_counter() - started, 3)
        self.record(name, record.to_dict())

    def record(self, name: str, spent: dict) -> None:
        """Save ``spent`` as stage ``name``'s compute (replacing an earlier record of it)."""
        stages = self._read()
        stages[name] = spent
        write_json_atomic(self.path, stages)

    def totals(self) -> dict[str, dict]:
        """Every recorded stage's compute."""
        return self._read()
