"""Rollouts: a batch of episodes played together, environment stepping overlapped with generation.

Each slot of an environment pool (:class:`~prism_agents.environments.pool.SlotPool`:
local worker processes or Ray actors) plays one task. The slots are split by env
worker into ``environment.overlap_groups`` groups that take turns: the prompts of
a group's running episodes go to the generator in one call, the completions are
parsed into actions (:func:`parse_action`) and sent to the group's workers
without waiting, and the next group generates while those
environments step. The order of the calls depends on the episodes alone, never
on timing, so sampled rollouts stay reproducible; with one group this is the
lockstep loop (generate for all, then step all). An action that cannot be
parsed, or is not admissible, still goes to the environment, which answers as
the benchmark does (ALFWorld: "Nothing happens."). With ``prompt.history: full``
an episode is one growing context: each prompt is the previous prompt and its
sampled completion followed by the next turn's tokens
(:meth:`~prism_agents.policies.prompts.PromptBuilder.next_prompt_ids`), and every
step records the token ids it added, so a learner trains on exactly what was
served. An episode whose next prompt would not fit in ``max_prompt_tokens`` ends
there, its ``failure`` saying so.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from prism_agents.environments.pool import PendingCalls, SlotPool
from prism_agents.faults import fault_point
from prism_agents.pipeline.compute import StageCompute
from prism_agents.policies.actions import parse_action
from prism_agents.config.generation import SamplingConfig
from prism_agents.policies.generators.base import Generator
from prism_agents.policies.prompts import PromptBuilder, served_context
from prism_agents.types import Step, Task, Trajectory


@dataclass
class _Episode:
    """An episode while it is being played."""

    task: Task
    instruction: str
    initial_observation: str
    observation: str
    admissible: list[str]
    steps: list[Step] = field(default_factory=list)
    won: bool = False
    score: float = 0.0
    failure: str | None = None
    done: bool = False
    truncated: bool = False

    def record(self, outcome: tuple[str, float, bool, bool, dict[str, Any]]) -> None:
        observation, _, terminated, truncated, info = outcome
        self.observation = observation
        self.admissible = list(info["admissible_actions"])
        self.won = bool(info["won"])
        self.score = float(info["score"])
        self.failure = info.get("failure")
        self.done = terminated or truncated
        self.truncated = truncated and not terminated and self.failure is None  # cut by the step limit

    def trajectory(self, source: str, repeat: int) -> Trajectory:
        suffix = f"#{repeat}" if repeat else ""
        return Trajectory(
            trajectory_id=f"{source}:{self.task.split}:{self.task.index}{suffix}",
            task=self.task,
            instruction=self.instruction,
            initial_observation=self.initial_observation,
            steps=self.steps,
            won=self.won,
            score=self.score,
            source=source,
            failure=self.failure,
            truncated=self.truncated,
            final_observation=self.observation,
            final_admissible_actions=self.admissible,
        )


def play_episodes(
    pool: SlotPool,
    generator: Generator,
    prompts: PromptBuilder,
    tasks: Sequence[Task],
    sampling: SamplingConfig,
    source: str,
    totals: StageCompute,
    max_prompt_tokens: int,
    description: str = "episodes",
) -> list[Trajectory]:
    """Play every entry of ``tasks`` (``pool.num_slots`` at a time) and return the episodes in order.

    A task listed several times (a group of episodes for RL, or pass-rate rollouts) is played once per
    entry; the k-th repeat's trajectory id ends in ``#k`` (the first has no suffix).
    """
    played: list[Trajectory] = []
    repeats: Counter[int] = Counter()
    with tqdm(total=len(tasks), desc=description, unit="episode") as progress:
        for start in range(0, len(tasks), pool.num_slots):
            batch = list(tasks[start : start + pool.num_slots])
            for episode in _play_batch(pool, generator, prompts, batch, sampling, totals, max_prompt_tokens, progress):
                played.append(episode.trajectory(source, repeats[episode.task.index]))
                repeats[episode.task.index] += 1
                progress.update(1)
                fault_point(f"rollout:{description}")
    totals.episodes += len(played)
    return played


def overlap_groups(pool: SlotPool) -> list[list[int]]:
    """The slots of each group that takes turns (``environment.overlap_groups``, at most one per worker):
    worker ``w`` belongs to group ``w % groups``, so a group's steps never wait behind another's."""
    count = max(1, min(pool.spec.config.overlap_groups, pool.num_workers))
    groups: list[list[int]] = [[] for _ in range(count)]
    for slot in range(pool.num_slots):
        groups[pool.worker_of(slot) % count].append(slot)
    return groups


def _play_batch(
    pool: SlotPool,
    generator: Generator,
    prompts: PromptBuilder,
    batch: list[Task],
    sampling: SamplingConfig,
    totals: StageCompute,
    max_prompt_tokens: int,
    progress: tqdm,
) -> list[_Episode]:
    """Play ``batch`` (task ``i`` in slot ``i``): each group in turn collects its environments' results,
    generates its next actions and sends them to its workers, while the other groups' environments step."""
    tasks = [task.index for task in batch] + [None] * (pool.num_slots - len(batch))
    episodes: dict[int, _Episode] = {}
    turns: deque[tuple[list[int], PendingCalls]] = deque()
    started = time.perf_counter()
    for group in overlap_groups(pool):
        group_tasks = [tasks[slot] if slot in group else None for slot in range(pool.num_slots)]
        if any(task is not None for task in group_tasks):
            turns.append((group, pool.submit_reset(group_tasks)))
    totals.env_s += time.perf_counter() - started
    while turns:
        group, pending = turns.popleft()
        started = time.perf_counter()
        results = pool.collect(pending)
        totals.env_s += time.perf_counter() - started
        if pending.kind == "reset":
            for slot in group:
                if results[slot] is not None:
                    episodes[slot] = _started_episode(batch[slot], *results[slot])
        else:
            for slot, outcome in enumerate(results):
                if outcome is not None:
                    episodes[slot].steps[-1].reward = float(outcome[1])
                    episodes[slot].record(outcome)
                    totals.env_steps += 1
        if actions := _next_actions(generator, prompts, episodes, group, sampling, totals, max_prompt_tokens, progress):
            started = time.perf_counter()
            turns.append((group, pool.submit_step([actions.get(slot) for slot in range(pool.num_slots)])))
            totals.env_s += time.perf_counter() - started
    return [episodes[slot] for slot in range(len(batch))]


def _started_episode(task: Task, observation: str, info: dict[str, Any]) -> _Episode:
    episode = _Episode(task, info.get("instruction", ""), observation, observation, list(info["admissible_actions"]))
    episode.failure = info.get("failure")
    episode.done = episode.failure is not None
    return episode


def _next_actions(
    generator: Generator,
    prompts: PromptBuilder,
    episodes: dict[int, _Episode],
    group: list[int],
    sampling: SamplingConfig,
    totals: StageCompute,
    max_prompt_tokens: int,
    progress: tqdm,
) -> dict[int, str]:
    """Generate the next action of each running episode of ``group`` in one call; the step is appended to the
    episode (its reward comes with the environment's answer). An episode whose prompt is full ends here."""
    running, prompt_ids, fed = [], [], []
    for slot in group:
        episode = episodes.get(slot)
        if episode is None or episode.done:
            continue
        added, continues = prompts.next_prompt_ids(episode.instruction, episode.steps, episode.observation, episode.admissible)
        ids = served_context(episode.steps) + added if continues else added
        if len(ids) > max_prompt_tokens:
            episode.done = True
            episode.failure = f"context full: the next prompt has {len(ids)} tokens, over the limit of {max_prompt_tokens}"
        else:
            running.append(slot)
            prompt_ids.append(ids)
            fed.append((added, continues))
    if not running:
        return {}
    progress.set_postfix(step=len(episodes[running[0]].steps) + 1, running=len(running))
    started = time.perf_counter()
    completions = generator.generate(prompt_ids, sampling)
    totals.generation_s += time.perf_counter() - started
    totals.prompt_tokens += sum(map(len, prompt_ids))
    totals.generated_tokens += sum(len(completion.token_ids) for completion in completions)
    actions: dict[int, str] = {}
    for slot, ids, (added, continues), completion in zip(running, prompt_ids, fed, completions):
        episode = episodes[slot]
        parsed = parse_action(completion.text, episode.admissible)
        actions[slot] = parsed.action
        episode.steps.append(
            Step(
                observation=episode.observation,
                action=parsed.action,
                reward=0.0,
                admissible_actions=episode.admissible,
                raw_completion=completion.text,
                valid_action=parsed.valid,
                completion_token_ids=list(completion.token_ids),
                completion_logprobs=list(completion.logprobs),
                prompt_tokens=len(ids),
                prompt_token_ids=added,
                continues_context=continues,
            )
        )
    return actions
