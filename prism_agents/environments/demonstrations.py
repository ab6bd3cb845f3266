"""Expert demonstrations: play the environment's expert on tasks, in parallel, with an on-disk cache.

A demonstration is cached as JSON under
``<cache dir>/<environment name>/<expert kind>/<key>.json``, where the key hashes
everything the demonstration depends on: the game's content
(:meth:`TextEnv.task_fingerprint`, so the same game reached through another
split or data folder is played once), the expert, ``max_steps``, and the
versions of prism-agents and of the environment's engine
(:attr:`TextEnv.engine_packages`). A
failed demonstration (expert without an action, expert that did not win in
``max_steps``, worker crash or timeout) is returned with ``won=False`` and
``failure`` set, never dropped; failures caused by the worker (crash, timeout)
are not cached, so a later run tries again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments.base import TextEnv
from prism_agents.environments.pool import EnvSpec, open_env_pool, pool_workers
from prism_agents.io import write_json_atomic
from prism_agents.types import Step, Task, Trajectory


def play_expert_episode(env: TextEnv, task: Task, source: str) -> dict:
    """Play the expert of an ``expert=True`` environment on ``task``; return the trajectory as a dict."""
    observation, info = env.reset(options={"task": task.index})
    instruction, initial_observation = info["instruction"], observation
    steps: list[Step] = []
    failure = None
    while True:
        action = info.get("expert_action")
        if action is None:
            failure = info.get("expert_error") or f"the expert gave no action after {len(steps)} steps"
            break
        next_observation, reward, terminated, truncated, next_info = env.step(action)
        steps.append(Step(observation=observation, action=action, reward=reward, admissible_actions=info["admissible_actions"]))
        observation, info = next_observation, next_info
        if terminated or truncated:
            break
    if failure is None and not info["won"]:
        failure = f"the expert did not win within {len(steps)} steps"
    trajectory = Trajectory(
        trajectory_id=f"expert:{task.task_id}",
        task=task,
        instruction=instruction,
        initial_observation=initial_observation,
        steps=steps,
        won=bool(info["won"]),
        score=float(info["score"]),
        source=source,
        failure=failure,
    )
    return trajectory.to_dict()


def collect_demonstrations(
    config: EnvironmentConfig,
    tasks: Sequence[Task],
    *,
    use_cache: bool = True,
    progress: bool = True,
    cluster: Optional[ClusterConfig] = None,
) -> list[Trajectory]:
    """Expert trajectories for ``tasks`` (all of one split), in the same order.

    Plays ``config.expert`` on ``config.num_workers`` worker processes (``cluster.env_workers`` Ray actors
    with ``cluster.backend: ray``), reads and writes the demonstration cache (``config.demo_cache_dir``).
    Count failures with ``sum(t.failure is not None for t in result)``.
    """
    if not tasks:
        return []
    splits = {task.split for task in tasks}
    if len(splits) != 1:
        raise ValueError(f"collect_demonstrations: tasks must come from one split (got {sorted(splits)})")
    spec = EnvSpec(config, splits.pop(), expert=True)
    source = f"expert:{config.expert}"
    cache_dir = config.resolved_demo_cache_dir() / config.name / config.expert
    env_class = spec.env_class()
    versions = engine_versions(env_class)
    cache_files = [cache_dir / f"{demonstration_key(env_class, config, task, versions)}.json" for task in tasks]

    results: list[Trajectory | None] = [None] * len(tasks)
    if use_cache:
        for position, (task, cache_file) in enumerate(zip(tasks, cache_files)):
            if cache_file.is_file():
                results[position] = _from_cache(cache_file, task)
    missing = [position for position, result in enumerate(results) if result is None]
    if missing:
        episode_timeout_s = config.reset_timeout_s + config.max_steps * config.step_timeout_s
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(missing), desc=f"expert demonstrations ({config.expert})", disable=not progress)
        with open_env_pool(spec, min(pool_workers(config, cluster), len(missing)), cluster) as pool:
            items = [(tasks[position], source) for position in missing]
            for item_index, outcome in pool.imap(play_expert_episode, items, episode_timeout_s):
                position = missing[item_index]
                if outcome.failure is None:
                    trajectory = Trajectory.from_dict(outcome.value)
                    write_json_atomic(cache_files[position], trajectory.to_dict())
                else:
                    trajectory = _failed(tasks[position], source, outcome.failure)
                results[position] = trajectory
                bar.update(1)
        bar.close()
    return [result for result in results if result is not None]


def engine_versions(env_class: type[TextEnv]) -> dict[str, str]:
    """The installed versions of prism-agents and of ``env_class``'s engine packages ("absent" when not installed)."""
    versions = {}
    for package in ("prism-agents", *env_class.engine_packages):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def demonstration_key(env_class: type[TextEnv], config: EnvironmentConfig, task: Task, versions: dict[str, str]) -> str:
    """The cache key of ``task``'s demonstration: game content, expert, step limit and engine ``versions``."""
    content = {
        "game": env_class.task_fingerprint(config, task),
        "expert": config.expert,
        "max_steps": config.max_steps,
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _from_cache(cache_file: Path, task: Task) -> Trajectory:
    trajectory = Trajectory.from_dict(json.loads(cache_file.read_text()))
    return dataclasses.replace(trajectory, task=task, trajectory_id=f"expert:{task.task_id}")


def _failed(task: Task, source: str, failure: str) -> Trajectory:
    return Trajectory(
        trajectory_id=f"expert:{task.task_id}",
        task=task,
        instruction="",
        initial_observation="",
        steps=[],
        won=False,
        score=0.0,
        source=source,
        failure=failure,
    )
