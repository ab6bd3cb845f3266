"""The stages of a run, in order: collect -> probe -> route -> sft [-> reprobe] -> rl -> eval -> report.

Each stage reads what earlier stages wrote to the run folder, writes its own
outputs atomically, and returns them with a short result that goes into
``stages.json`` and ``summary.json``. The routing stages live in
:mod:`~prism_agents.pipeline.routing`, SFT in :mod:`~prism_agents.pipeline.finetune`,
RL in :mod:`~prism_agents.pipeline.reinforce`.
"""

from __future__ import annotations

from typing import Any

from prism_agents.environments import collect_demonstrations
from prism_agents.faults import fault_point
from prism_agents.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.context import RunContext
from prism_agents.pipeline.evaluation import summarize_episodes
from prism_agents.pipeline.finetune import supervised_finetuning
from prism_agents.pipeline.outcome import Stage, StageOutcome
from prism_agents.pipeline.provenance import run_provenance, tasks_record
from prism_agents.pipeline.reinforce import reinforcement_learning
from prism_agents.pipeline.routing import probe, reprobe, route
from prism_agents.reporting.curves import CURVES_FILE, write_training_curves
from prism_agents.reporting.rates import summary_with_intervals
from prism_agents.reporting.report import render_report


def collect(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Play the expert on the collect split's tasks; keep every demonstration, won or not."""
    settings = context.config.collect
    spec = context.env_spec(settings.split, expert=True)
    tasks = context.chosen_tasks(spec, settings.num_tasks)
    demonstrations = collect_demonstrations(spec.config, tasks, cluster=context.config.cluster)
    write_jsonl_atomic(context.folder.trajectories, (d.to_dict() for d in demonstrations))
    fault_point("collect.after_write")
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
            "data_files": tasks_record(spec, tasks),
        },
    )


def evaluate(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Play the evaluation split's tasks with the policy (greedy unless configured) and score them."""
    settings = context.config.eval
    max_steps = settings.max_steps or context.config.environment.max_steps
    spec = context.env_spec(settings.split, max_steps=max_steps)
    tasks = context.chosen_tasks(spec, settings.num_tasks)
    source, described = context.serve(trained=settings.policy == "trained")
    episodes = context.play(spec, tasks, settings.sampling, source, spent, description=f"eval {settings.split}")
    write_jsonl_atomic(context.folder.evaluation, (episode.to_dict() for episode in episodes))
    summary = summarize_episodes(episodes, settings.split)
    sampling = settings.sampling
    decoding = "greedy" if sampling.greedy else f"sampled (temperature {sampling.temperature}, top-p {sampling.top_p})"
    summary |= {
        "policy": described,
        "max_steps": max_steps,
        "decoding": decoding,
        "data": spec.env_class().split_description(spec.config, settings.split),
        "data_files": tasks_record(spec, tasks),
    }
    context.metrics.log(
        "eval", 0, {key: summary[key] for key in ("episodes", "success_rate", "mean_score")}, split=settings.split
    )
    spent.model_parameters = context.policy().base_parameter_count()
    return StageOutcome([context.folder.evaluation], summary)


def report(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Write ``summary.json`` and ``report.md`` from the committed stages (refused if an output of one is
    missing or changed, naming the file: the report never claims what the folder no longer holds)."""
    folder, config = context.folder, context.config
    folder.check_committed()
    summary: dict[str, Any] = {
        "run": folder.path.name,
        "model": config.model.name,
        "environment": config.environment.name,
        "seed": config.seed,
        "provenance": run_provenance(config),
    }
    records = folder.records()
    for stage in ("collect", "probe", "route", "sft", "reprobe", "rl", "eval"):
        if stage in records:
            summary[stage] = records[stage]["result"]
    curves = folder.path / CURVES_FILE
    drawn = write_training_curves(folder.metrics, curves)
    summary = summary_with_intervals(summary)
    write_json_atomic(folder.summary, summary)
    write_text_atomic(folder.report, render_report(summary, context.compute.totals(), CURVES_FILE if drawn else None))
    return StageOutcome([folder.summary, folder.report, *([curves] if drawn else [])], {})


STAGES: dict[str, Stage] = {
    "collect": collect,
    "probe": probe,
    "route": route,
    "sft": supervised_finetuning,
    "reprobe": reprobe,
    "rl": reinforcement_learning,
    "eval": evaluate,
    "report": report,
}
"""Every stage by name, in run order (``reprobe`` runs only with ``router.reprobe``)."""
