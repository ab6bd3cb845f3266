"""``results.json``: every variant's evaluation, routing split and compute, over seeds.

Per variant and evaluation split: success rate and score (each in [0, 1]) as mean, sample standard
deviation over seeds (None with one seed) and the per-seed values, overall and per task type; beside each
per-seed success rate its 95 % Wilson interval (``success_intervals``, in seed order), and overall the
success of all seeds' episodes pooled with its interval (``pooled_success``: what the Pareto plot draws;
it counts episode sampling only, not the spread between seeds). Scores are means: no interval. Compute
per variant is the mean over seeds of each stage's wall clock and of the training stages' tokens and
estimated FLOPs; speedups are the baseline variant's training cost divided by the variant's. A variant that
evaluates the base model (``eval.policy=base``) routes and trains nothing: its routing is None, its compute
that of its evaluation alone, and it has no speedup (nor does any variant against it as the baseline).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from prism_agents.comparison.ablation import Ablation, extra_evaluation_name
from prism_agents.config import RunConfig
from prism_agents.environments import EnvSpec
from prism_agents.pipeline.compute import ComputeLedger
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.reporting.rates import interval_record, rate_interval, with_interval

RESULTS_FILE = "results.json"
TRAINING_STAGES = ("probe", "route", "sft", "reprobe", "rl")
"""Stages whose cost is the training recipe's (the paper's cost: probe + SFT + RL); collect and eval are
reported beside it."""
REPORTED_STAGES = ("collect", *TRAINING_STAGES, "eval")
TOKEN_COUNTS = ("trained_tokens", "probed_tokens", "scored_tokens", "generated_tokens", "prompt_tokens")


def comparison_results(ablation: Ablation) -> dict[str, Any]:
    """The comparison's results from its finished run folders."""
    settings = ablation.config
    splits = settings.eval_splits or [ablation.primary_split]
    some_config = next(iter(ablation.runs.values()))
    results: dict[str, Any] = {
        "comparison": settings.name,
        "experiment": str(ablation.experiment),
        "model": some_config.model.name,
        "environment": some_config.environment.name,
        "seeds": list(settings.seeds),
        "baseline": settings.baseline,
        "common_overrides": list(settings.overrides),
        "splits": {split: _split_description(some_config, split) for split in splits},
        "variants": {},
    }
    for variant, overrides in settings.variants.items():
        runs = [RunFolder.open(ablation.run_path(variant, seed)) for seed in settings.seeds]
        results["variants"][variant] = {
            "overrides": list(overrides),
            "runs": [run.path.name for run in runs],
            "routing": None if runs[0].config.eval.policy == "base" else _routing(runs),
            "evaluation": {split: _evaluation(_evaluation_runs(runs, split, split == splits[0])) for split in splits},
            "compute": _compute(runs),
        }
    if settings.baseline is not None:
        _add_speedups(results["variants"], settings.baseline)
    return results


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for a single value) and the values themselves."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "values": list(values),
    }


def _split_description(config: RunConfig, split: str) -> str:
    spec = EnvSpec(config.environment, split)
    return spec.env_class().split_description(spec.config, split)


def _evaluation_runs(runs: list[RunFolder], split: str, primary: bool) -> list[RunFolder]:
    return runs if primary else [RunFolder.open(run.path.parent / extra_evaluation_name(run.path.name, split)) for run in runs]


def _evaluation(runs: list[RunFolder]) -> dict[str, Any]:
    summaries = [run.stage_result("eval") for run in runs]
    task_types = sorted({t for summary in summaries for t in summary["per_task_type"]})
    return {
        "episodes_per_seed": [summary["episodes"] for summary in summaries],
        "failed_episodes": sum(summary["failed_episodes"] for summary in summaries),
        "policy": [summary["policy"] for summary in summaries],
        "success_rate": spread([summary["success_rate"] for summary in summaries]),
        "success_intervals": [interval_record(rate_interval(summary)) for summary in summaries],
        "pooled_success": _pooled(summaries),
        "score": spread([summary["mean_score"] for summary in summaries]),
        "per_task_type": {task_type: _task_type(summaries, task_type) for task_type in task_types},
    }


def _pooled(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Successes and episodes of all seeds together, their rate and its interval."""
    successes, episodes = (sum(summary[name] for summary in summaries) for name in ("successes", "episodes"))
    rate = successes / episodes if episodes else 0.0
    return with_interval({"successes": successes, "episodes": episodes, "success_rate": rate})


def _task_type(summaries: list[dict[str, Any]], task_type: str) -> dict[str, Any]:
    """One task type's success rate over the seeds whose evaluation drew tasks of that type; its intervals
    in seed order, None for a seed that drew none."""
    rows = [summary["per_task_type"].get(task_type) for summary in summaries]
    drawn = [row for row in rows if row is not None]
    return {
        "episodes": sum(row["episodes"] for row in drawn),
        "success_rate": spread([row["success_rate"] for row in drawn]),
        "success_intervals": [None if row is None else interval_record(rate_interval(row)) for row in rows],
    }


def _routing(runs: list[RunFolder]) -> dict[str, Any]:
    """Mean counts per destination over seeds, and the SFT and RL shares of the routed demonstrations
    (``both`` counts toward each, as in the paper's "100% + 100%")."""
    routes = [run.stage_result("route") for run in runs]
    counts = {name: statistics.fmean(route["destinations"][name] for route in routes) for name in ("sft", "rl", "both")}
    total = sum(counts.values())
    return {
        "router": routes[0]["router"],
        "demonstrations": statistics.fmean(route["trajectories"] for route in routes),
        "destinations": counts,
        "sft_share": (counts["sft"] + counts["both"]) / total if total else 0.0,
        "rl_share": (counts["rl"] + counts["both"]) / total if total else 0.0,
    }


def _compute(runs: list[RunFolder]) -> dict[str, Any]:
    ledgers = [_ledger(run) for run in runs]
    stage_seconds = {
        stage: statistics.fmean(ledger.get(stage, {}).get("wall_clock_s", 0.0) for ledger in ledgers)
        for stage in REPORTED_STAGES
    }
    training = [[ledger[stage] for stage in TRAINING_STAGES if stage in ledger] for ledger in ledgers]
    return {
        "stage_wall_clock_s": stage_seconds,
        "stages_run": sorted({stage for ledger in ledgers for stage in ledger}),
        "shared_stages": sorted({stage for ledger in ledgers for stage, spent in ledger.items() if "shared_from" in spent}),
        "training_wall_clock_s": statistics.fmean(sum(s["wall_clock_s"] for s in spent) for spent in training),
        "training_flops": statistics.fmean(sum(s["estimated_flops"] for s in spent) for spent in training),
        **{count: statistics.fmean(sum(s[count] for s in spent) for spent in training) for count in TOKEN_COUNTS},
    }


def _ledger(run: RunFolder) -> dict[str, dict[str, Any]]:
    return ComputeLedger(run.compute).totals()


def _add_speedups(variants: dict[str, Any], baseline: str) -> None:
    """The baseline's training cost over each variant's; None where either trained nothing (a base-model variant)."""
    reference = variants[baseline]["compute"]
    for entry in variants.values():
        compute = entry["compute"]
        for measure, key in (("training_wall_clock_s", "speedup_wall_clock"), ("training_flops", "speedup_flops")):
            trained = compute[measure] > 0 and reference[measure] > 0
            compute[key] = reference[measure] / compute[measure] if trained else None
