"""Choosing tasks from a split: deterministic, seed-driven subsets."""

from __future__ import annotations

import random
from collections.abc import Sequence

from prism_agents.types import Task


def select_tasks(tasks: Sequence[Task], n: int, seed: int) -> list[Task]:
    """``n`` tasks drawn without replacement by ``random.Random(seed)``, returned in the split's order.

    The same tasks, seed and ``n`` always give the same selection (on any machine
    and Python version: ``random.Random.sample`` over indices is stable). ``n`` at
    least ``len(tasks)`` returns every task.
    """
    if n < 0:
        raise ValueError(f"select_tasks: n must be non-negative (got {n})")
    if n >= len(tasks):
        return list(tasks)
    chosen = random.Random(seed).sample(range(len(tasks)), n)
    return [tasks[i] for i in sorted(chosen)]
