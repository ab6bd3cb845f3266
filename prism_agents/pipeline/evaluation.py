"""Success and score of a set of episodes, overall and per task type, always with split and counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prism_agents.reporting.rates import with_interval
from prism_agents.types import Trajectory


def summarize_episodes(episodes: Sequence[Trajectory], split: str) -> dict[str, Any]:
    """Metrics of evaluation ``episodes`` played on ``split``.

    ``success_rate`` is the fraction of episodes won (in [0, 1]), ``success_interval``
    its 95 % Wilson interval (bounds in [0, 1] and the episodes counted; None for
    no episodes); ``mean_score`` the mean benchmark score (in [0, 1]: a mean, so no
    interval); ``failed_episodes`` counts episodes
    that could not be played to the end (crashed or timed-out workers), which
    count as lost.
    """
    by_type: dict[str, list[Trajectory]] = defaultdict(list)
    for episode in episodes:
        by_type[episode.task.task_type].append(episode)
    return {
        "split": split,
        **_rates(episodes),
        "per_task_type": {task_type: _rates(group) for task_type, group in sorted(by_type.items())},
    }


def _rates(episodes: Sequence[Trajectory]) -> dict[str, Any]:
    count = len(episodes)
    successes = sum(episode.won for episode in episodes)
    return with_interval({
        "episodes": count,
        "successes": successes,
        "success_rate": successes / count if count else 0.0,
        "mean_score": sum(episode.score for episode in episodes) / count if count else 0.0,
        "mean_steps": sum(len(episode.steps) for episode in episodes) / count if count else 0.0,
        "failed_episodes": sum(episode.failure is not None for episode in episodes),
    })
