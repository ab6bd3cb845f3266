"""The stages of a run, in order: collect -> sft -> eval -> report.

Each stage reads what earlier stages wrote to the run folder, writes its own
outputs atomically, and returns them with a short result that goes into
``stages.json`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prism_agents.environments import EnvPool, EnvSpec, collect_demonstrations, select_tasks
from prism_agents.io import read_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.context import RunContext
from prism_agents.pipeline.evaluation import summarize_episodes
from prism_agents.pipeline.rollout import play_episodes
from prism_agents.registry import LEARNERS
from prism_agents.reporting.report import render_report
from prism_agents.types import Task, Trajectory


@dataclass
class StageOutcome:
    """What a stage wrote and what it found."""

    outputs: list[Path]
    """Files and folders the stage wrote (all must exist for the stage to count as done)."""
    result: dict[str, Any]
    """The stage's section of ``summary.json``."""


Stage = Callable[[RunContext, StageCompute], StageOutcome]


def chosen_tasks(context: RunContext, split: str, count: int, expert: bool = False, max_steps: int | None = None) -> tuple[EnvSpec, list[Task]]:
    """The environment recipe for ``split`` and the ``count`` tasks the run's seed picks (0 = all)."""
    environment = context.config.environment
    if max_steps is not None:
        environment = dataclasses.replace(environment, max_steps=max_steps)
    spec = EnvSpec(environment, split, expert=expert)
    tasks = spec.tasks()
    if not tasks:
        raise RuntimeError(f"environment {environment.name!r}: split {split!r} has no tasks (data: {environment.data_path or 'the default data folder'})")
    return spec, select_tasks(tasks, count or len(tasks), context.config.seed)


def collect(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Play the expert on the collect split's tasks; keep every demonstration, won or not."""
    settings = context.config.collect
    spec, tasks = chosen_tasks(context, settings.split, settings.num_tasks, expert=True)
    demonstrations = collect_demonstrations(spec.config, tasks)
    write_jsonl_atomic(context.folder.trajectories, (d.to_dict() for d in demonstrations))
    won = [d for d in demonstrations if d.won]
    spent.episodes = len(demonstrations)
    spent.env_steps = sum(len(d.steps) for d in demonstrations)
    return StageOutcome(
        [context.folder.trajectories],
        {
            "split": settings.split,
            "expert": context.config.environment.expert,
            "demonstrations": len(demonstrations),
            "won": len(won),
            "expert_failures": len(demonstrations) - len(won),
            "mean_steps": sum(len(d.steps) for d in won) / len(won) if won else 0.0,
        },
    )


def supervised_finetuning(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Train the LoRA adapter on the won demonstrations and save it as the next adapter version."""
    demonstrations = [Trajectory.from_dict(record) for record in read_jsonl(context.folder.trajectories)]
    training_set = [d for d in demonstrations if d.won and d.failure is None]
    if not training_set:
        raise RuntimeError(f"{context.folder.trajectories}: no won demonstration to train on")
    policy = context.policy()
    learner = LEARNERS.get("sft")(context.config.sft)
    metrics = learner.train(
        policy,
        training_set,
        prompts=context.prompts(),
        on_step=lambda values: context.metrics.log("sft", int(values["step"]), values, split=context.config.collect.split),
    )
    version = (context.folder.latest_adapter_version() or 0) + 1
    adapter = policy.save_adapter(context.folder.adapter(version))
    spent.trained_tokens = int(metrics["tokens_trained"])
    spent.model_parameters = _base_parameters(context)
    return StageOutcome(
        [adapter],
        {
            "split": context.config.collect.split,
            "trajectories": len(training_set),
            "examples": int(metrics["examples"]),
            "epochs": context.config.sft.epochs,
            "optimizer_steps": int(metrics["steps"]),
            "trained_tokens": int(metrics["tokens_trained"]),
            "final_loss": float(metrics["loss_last_epoch"]),
            "adapter": str(adapter.relative_to(context.folder.path)),
        },
    )


def evaluate(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Play the evaluation split's tasks with the policy (greedy unless configured) and score them."""
    settings = context.config.eval
    max_steps = settings.max_steps or context.config.environment.max_steps
    spec, tasks = chosen_tasks(context, settings.split, settings.num_tasks, max_steps=max_steps)
    generator = context.generator()
    if settings.policy == "trained":
        version = context.folder.latest_adapter_version()
        if version is None:
            raise RuntimeError("eval.policy=trained but the run has no adapter yet: run the sft stage or set eval.policy=base")
        policy = context.policy()
        generator.load_adapter(context.folder.adapter(version), version, reference=policy)
        source, described = f"policy:v{version}", f"adapter v{version}"
    else:
        generator.use_base_model()
        source, described = "policy:base", "base model (no adapter)"
    with EnvPool(spec, num_slots=min(settings.batch_size, len(tasks))) as pool:
        episodes = play_episodes(
            pool, generator, context.prompts(), tasks, settings.sampling, source, spent,
            max_prompt_tokens=context.max_prompt_tokens(settings.sampling), description=f"eval {settings.split}",
        )
    write_jsonl_atomic(context.folder.evaluation, (episode.to_dict() for episode in episodes))
    summary = summarize_episodes(episodes, settings.split)
    sampling = settings.sampling
    decoding = "greedy" if sampling.greedy else f"sampled (temperature {sampling.temperature}, top-p {sampling.top_p})"
    summary |= {"policy": described, "max_steps": max_steps, "decoding": decoding}
    context.metrics.log(
        "eval", 0, {key: summary[key] for key in ("episodes", "success_rate", "mean_score")}, split=settings.split
    )
    spent.model_parameters = _base_parameters(context)
    return StageOutcome([context.folder.evaluation], summary)


def report(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Write ``summary.json`` and ``report.md`` from the finished stages."""
    folder, config = context.folder, context.config
    summary: dict[str, Any] = {
        "run": folder.path.name,
        "model": config.model.name,
        "environment": config.environment.name,
        "seed": config.seed,
    }
    for stage in ("collect", "sft", "eval"):
        if folder.stage_done(stage):
            summary[stage] = folder.stage_result(stage)
    write_json_atomic(folder.summary, summary)
    write_text_atomic(folder.report, render_report(summary, context.compute.totals()))
    return StageOutcome([folder.summary, folder.report], {})


def _base_parameters(context: RunContext) -> int:
    policy = context.policy()
    return sum(p.numel() for name, p in policy.model.named_parameters() if "lora_" not in name)


STAGES: dict[str, Stage] = {"collect": collect, "sft": supervised_finetuning, "eval": evaluate, "report": report}
"""Every stage by name, in run order."""
