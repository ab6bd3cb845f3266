"""The ``rl`` stage: RL on the tasks of the router's RL share, starting from the SFT adapter.

Each iteration draws ``rl.tasks_per_iteration`` tasks from the RL share (a
seeded order, cycled), plays each ``rl.group_size`` times with the newest
adapter (served and checked by the generator), lets the learner update the
adapter on those episodes, and saves it as the next adapter version. Each
iteration's line also times its parts: ``sync_s`` (serving the committed adapter
and checking it; ``sync_serve_s`` and ``sync_check_s`` split it, and merged vLLM
serving splits the serve into ``sync_merge_s`` and ``sync_reload_s``),
``rollout_s`` (playing; ``compute.json`` splits rollouts into generation and
environment time) and ``update_s`` (learning and saving).

Each iteration is committed on its own: its adapter version is saved (with the
learner's own state, optimizer and PPO's value head, as ``rl_state.pt`` inside
the adapter folder), then one atomic rewrite of ``rl_iterations.jsonl`` adds the
iteration's line (adapter, metrics, compute). ``--resume`` continues after the
last committed iteration from its adapter and learner state; the stage's compute
is the sum of its committed iterations over every attempt. With ``cluster.backend: ray`` the learner runs on
``cluster.learner_workers`` Ray workers that live for the stage (its state stays in them between iterations).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from typing import Any

from prism_agents.config.rl import RewardConfig, RLConfig
from prism_agents.cluster.learner_group import learner_for
from prism_agents.faults import fault_point
from prism_agents.io import write_jsonl_atomic
from prism_agents.learners.rl_samples import shaped_rewards
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.context import RunContext
from prism_agents.pipeline.outcome import StageOutcome
from prism_agents.types import Task, Trajectory

RL_DESTINATIONS = ("rl", "both")
"""Routing destinations whose tasks the RL stage trains on."""
RL_STATE_FILE = "rl_state.pt"
"""The learner's own state, saved inside each RL adapter version's folder."""


def rl_tasks(context: RunContext) -> list[Task]:
    """The distinct tasks routed to RL (or both) in the latest routing round of each demonstration, in routing order."""
    latest: dict[str, Any] = {}
    for record in context.routing_records():
        latest[record.trajectory_id] = record
    chosen = {record.trajectory_id for record in latest.values() if record.destination in RL_DESTINATIONS}
    tasks: dict[str, Task] = {}
    for demonstration in context.demonstrations():
        if demonstration.trajectory_id in chosen:
            tasks.setdefault(demonstration.task.task_id, demonstration.task)
    return list(tasks.values())


def planned_iterations(settings: RLConfig, num_tasks: int) -> int:
    """``rl.iterations``, or with ``rl.task_passes`` the iterations that play each of ``num_tasks`` that often."""
    if settings.task_passes is None:
        return settings.iterations
    return math.ceil(settings.task_passes * num_tasks / settings.tasks_per_iteration)


def reinforcement_learning(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Run the remaining RL iterations; each commits an adapter version and a line of ``rl_iterations.jsonl``."""
    settings = context.config.rl
    folder = context.folder
    tasks = rl_tasks(context)
    iterations = planned_iterations(settings, len(tasks))
    if not tasks or iterations == 0:
        write_jsonl_atomic(folder.rl_iterations, [])
        reason = "no task was routed to RL" if not tasks else "rl.iterations is 0"
        return StageOutcome([folder.rl_iterations], {"tasks": len(tasks), "iterations": 0, "skipped": reason})
    finished = folder.rl_progress()
    earlier = StageCompute.total(StageCompute.from_dict(line.get("compute", {})) for line in finished)
    spent.add(earlier)  # the work of earlier attempts' committed iterations
    policy = context.policy()
    with learner_for(context.config, settings.learner, settings) as learner:  # Ray workers for the stage, or local
        if finished and (folder.path / finished[-1]["adapter"] / RL_STATE_FILE).is_file():
            learner.load_state(folder.path / finished[-1]["adapter"] / RL_STATE_FILE, policy)
        max_steps = settings.max_steps or context.config.eval.max_steps or context.config.environment.max_steps
        spec = context.env_spec(context.config.collect.split, max_steps=max_steps)
        order = list(tasks)
        random.Random(settings.seed).shuffle(order)
        for iteration in range(len(finished), iterations):
            first = iteration * settings.tasks_per_iteration
            chosen = [order[(first + k) % len(order)] for k in range(settings.tasks_per_iteration)]
            part = StageCompute(model_parameters=policy.base_parameter_count())
            started = clock = time.perf_counter()
            source, _ = context.serve(trained=True)
            timings = {"sync_s": time.perf_counter() - clock}
            timings |= {f"sync_{part}_s": seconds for part, seconds in context.generator().load_seconds.items()}
            clock = time.perf_counter()
            episodes = context.play(
                spec, [task for task in chosen for _ in range(settings.group_size)], settings.sampling, source, part,
                description=f"rl iteration {iteration + 1}/{iterations}",
                stream=f"rl iteration {iteration + 1}",  # the same episodes whatever rl.iterations is
            )
            timings["rollout_s"] = time.perf_counter() - clock
            fault_point("rl.after_rollouts")
            clock = time.perf_counter()
            update = learner.train(policy, episodes, prompts=context.prompts())
            adapter = policy.save_adapter(folder.adapter(folder.next_adapter_version()))
            learner.save_state(adapter / RL_STATE_FILE)
            fault_point("rl.after_save")
            timings["update_s"] = time.perf_counter() - clock
            part.trained_tokens = int(update["tokens_trained"])
            part.wall_clock_s = round(time.perf_counter() - started, 3)
            values = episode_metrics(episodes, settings.reward) | {key: float(value) for key, value in update.items()} | timings
            context.metrics.log("rl", iteration + 1, values, split=context.config.collect.split)
            line = {"iteration": iteration + 1, "adapter": str(adapter.relative_to(folder.path)), "played_with": source, **values}
            folder.commit_rl_iteration(line | {"compute": part.to_dict()})
            finished.append(line)
            spent.add(dataclasses.replace(part, wall_clock_s=0.0))  # the runner times this attempt as a whole
            fault_point("rl.iteration_committed")
    spent.model_parameters = policy.base_parameter_count()
    outputs = [folder.rl_iterations] + [folder.path / line["adapter"] for line in finished]
    return StageOutcome(
        outputs,
        {
            "learner": settings.learner,
            "advantage": settings.advantage if settings.learner == "grpo" else None,
            "split": context.config.collect.split,
            "tasks": len(tasks),
            "iterations": len(finished),
            "episodes_per_iteration": settings.tasks_per_iteration * settings.group_size,
            "first_iteration_success_rate": finished[0]["success_rate"],
            "last_iteration_success_rate": finished[-1]["success_rate"],
            "adapter": finished[-1]["adapter"],
        },
    )


def episode_metrics(episodes: list[Trajectory], reward: RewardConfig) -> dict[str, float]:
    """Episodes played, success rate, mean shaped return, mean benchmark score, mean length, invalid-action
    rate and served tokens (every token the policy was fed or sampled, each once) of an iteration."""
    steps = [step for episode in episodes for step in episode.steps]
    served = sum(len(step.prompt_token_ids or []) + len(step.completion_token_ids or []) for step in steps)
    return {
        "episodes": float(len(episodes)),
        "served_tokens": float(served),
        "mean_return": sum(sum(shaped_rewards(e, reward)) for e in episodes) / len(episodes),
        "success_rate": sum(e.won for e in episodes) / len(episodes),
        "mean_score": sum(e.score for e in episodes) / len(episodes),
        "mean_steps": len(steps) / len(episodes),
        "invalid_action_rate": sum(not step.valid_action for step in steps) / len(steps) if steps else 0.0,
    }
