"""``report.md``: a run's results for a person, from ``summary.json`` and ``compute.json``."""

from __future__ import annotations

from typing import Any

from prism_agents.reporting.rates import INTERVAL_NOTE, iteration_interval, percent_text, rate_text

TASK_TYPE_ORDER = ("pick", "look", "clean", "heat", "cool", "pick2")
"""ALFWorld's task families in the order the literature tabulates them."""


def render_report(summary: dict[str, Any], compute: dict[str, dict[str, Any]], curves: str | None = None) -> str:
    """The Markdown report of a run; ``curves`` names its training-curves image, if it has one."""
    lines = [f"# Run {summary['run']}", ""]
    lines += [f"- Model: `{summary['model']}`", f"- Environment: `{summary['environment']}`", f"- Seed: {summary['seed']}", ""]
    if "collect" in summary:
        lines += _collect_section(summary["collect"])
    if "route" in summary:
        lines += ["## Routing", ""] + routing_lines(summary["route"]) + [""]
    if "sft" in summary:
        lines += _sft_section(summary["sft"])
    if "reprobe" in summary:
        lines += ["## Re-probe after SFT", ""] + routing_lines(summary["reprobe"]["routing"]) + [""]
        lines += _sft_section(summary["reprobe"]["sft"])
    if "rl" in summary:
        lines += _rl_section(summary["rl"])
    if curves:
        lines += ["## Training curves", "", f"![SFT loss and RL episodes by step]({curves})", ""]
    if "eval" in summary:
        lines += _eval_section(summary["eval"])
    if compute:
        lines += _compute_section(compute)
    if "provenance" in summary:
        lines += _provenance_section(summary)
    return "\n".join(lines) + "\n"


def _collect_section(collect: dict[str, Any]) -> list[str]:
    return [
        "## Expert demonstrations",
        "",
        f"{collect['demonstrations']} expert demonstrations ({collect['expert']} expert) on split "
        f"`{collect['split']}`: {collect['won']} won, {collect['expert_failures']} not won "
        f"(kept out of training), {collect['mean_steps']:.1f} steps on average.",
        "",
    ]


def routing_lines(routing: dict[str, Any]) -> list[str]:
    """A routing round as text: counts per destination and per task type, and the score distribution."""
    counts = routing["destinations"]
    lines = [
        f"Router `{routing['router']}` (round {routing['round']}), {routing['trajectories']} demonstrations routed: "
        f"{counts['sft']} to SFT, {counts['rl']} to RL, {counts['both']} to both."
        + (f" {routing['skipped_not_won']} not-won demonstration(s) were not routed." if routing.get("skipped_not_won") else ""),
        "",
        "| task type | sft | rl | both |",
        "| --- | ---: | ---: | ---: |",
    ]
    per_type = routing["per_task_type"]
    for task_type in [t for t in TASK_TYPE_ORDER if t in per_type] + sorted(set(per_type) - set(TASK_TYPE_ORDER)):
        row = per_type[task_type]
        lines.append(f"| {task_type} | {row['sft']} | {row['rl']} | {row['both']} |")
    score = routing["score"]
    if score:
        by_destination = ", ".join(f"{name} {mean:.4g}" for name, mean in routing["mean_score_by_destination"].items())
        lines += [
            "",
            f"Score ({routing['score_name']}): min {score['min']:.4g}, quartiles {score['q25']:.4g} / "
            f"{score['median']:.4g} / {score['q75']:.4g}, max {score['max']:.4g}; mean by destination: {by_destination}.",
        ]
    return lines


def _sft_section(sft: dict[str, Any]) -> list[str]:
    if not sft["trajectories"]:
        return ["## Supervised fine-tuning", "", f"No demonstration was routed to SFT ({sft['routing']}): nothing trained.", ""]
    return [
        "## Supervised fine-tuning",
        "",
        f"{sft['examples']} training examples from {sft['trajectories']} demonstrations, {sft['epochs']} epoch(s), "
        f"{sft['optimizer_steps']} optimizer steps over {sft['trained_tokens']} tokens; "
        f"training loss on action tokens {sft['final_loss']:.4f} (mean over the last epoch). Adapter: `{sft['adapter']}`.",
        "",
    ]


def _rl_section(rl: dict[str, Any]) -> list[str]:
    if not rl["iterations"]:
        return ["## Reinforcement learning", "", f"No RL iteration ran: {rl['skipped']}.", ""]
    estimator = f", advantage `{rl['advantage']}`" if rl["advantage"] else ""
    return [
        "## Reinforcement learning",
        "",
        f"Learner `{rl['learner']}`{estimator} on {rl['tasks']} task(s) of split `{rl['split']}` routed to RL: "
        f"{rl['iterations']} iteration(s) of {rl['episodes_per_iteration']} sampled episodes each. Success rate of "
        f"the iteration's own episodes [{INTERVAL_NOTE}, {rl['episodes_per_iteration']} episodes]: "
        f"{_iteration_rate(rl, 'first')} in the first, {_iteration_rate(rl, 'last')} in the last. "
        f"Adapter: `{rl['adapter']}` (per-iteration metrics in `rl_iterations.jsonl` and `metrics.jsonl`).",
        "",
    ]


def _iteration_rate(rl: dict[str, Any], which: str) -> str:
    rate = rl[f"{which}_iteration_success_rate"]
    return percent_text(iteration_interval(rate, rl["episodes_per_iteration"]), " %")


def eval_headline(evaluation: dict[str, Any]) -> str:
    """The evaluation in one line: split, episodes, success rate with its interval, and score, each named."""
    return (
        f"eval ({evaluation['split']} split, {evaluation['episodes']} episodes, {evaluation['policy']}): "
        f"success rate {rate_text(evaluation, ' %')} ({evaluation['successes']}/{evaluation['episodes']}, "
        f"{INTERVAL_NOTE}), score {100 * evaluation['mean_score']:.2f} (mean benchmark score x100)"
    )


def _eval_section(evaluation: dict[str, Any]) -> list[str]:
    lines = [
        "## Evaluation",
        "",
        f"Policy: {evaluation['policy']}. Split `{evaluation['split']}`, {evaluation['episodes']} episodes, "
        f"at most {evaluation['max_steps']} steps each, {evaluation['decoding']} decoding.",
        f"Data: {evaluation['data']}." if evaluation.get("data") else "",
        "",
        "Success = the episode's score is 1 (ALFWorld: the game won; WebShop: reward 1.0). "
        "Score = the mean of the episodes' benchmark scores x 100 (WebShop's score; on ALFWorld equal to the success rate). "
        f"Brackets: the success rate's {INTERVAL_NOTE} over the row's episodes (a score is a mean: no interval).",
        "",
        "| task type | episodes | successes | success rate (%) | score (mean x100) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    per_type = evaluation["per_task_type"]
    ordered = [t for t in TASK_TYPE_ORDER if t in per_type] + sorted(set(per_type) - set(TASK_TYPE_ORDER))
    for task_type in ordered:
        lines.append(_rate_row(task_type, per_type[task_type]))
    lines.append(_rate_row("**all**", evaluation))
    lines += [
        "",
        f"{evaluation['failed_episodes']} episode(s) failed to run (counted as lost); "
        f"{evaluation['mean_steps']:.1f} steps per episode on average.",
        "",
    ]
    return lines


def _rate_row(label: str, rates: dict[str, Any]) -> str:
    return (
        f"| {label} | {rates['episodes']} | {rates['successes']} | {rate_text(rates)} | "
        f"{100 * rates['mean_score']:.2f} |"
    )


def _compute_section(compute: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "## Compute",
        "",
        "| stage | wall clock (s) | episodes | env steps | prompt tokens | generated tokens | trained tokens "
        "| probed tokens | scored tokens | est. FLOPs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage, spent in compute.items():
        lines.append(
            f"| {stage} | {spent['wall_clock_s']:.1f} | {spent['episodes']} | {spent['env_steps']} | "
            f"{spent['prompt_tokens']} | {spent['generated_tokens']} | {spent['trained_tokens']} | "
            f"{spent['probed_tokens']} | {spent['scored_tokens']} | {spent['estimated_flops']:.3g} |"
        )
    lines += [
        "",
        "FLOPs are estimates (2N per token of a forward pass, 6N per trained or probed token; N = base parameters).",
        "",
    ]
    return lines


def _provenance_section(summary: dict[str, Any]) -> list[str]:
    provenance = summary["provenance"]
    model = provenance["model"]
    packages = ", ".join(f"{name} {version}" for name, version in provenance["packages"].items())
    lines = [
        "## Provenance",
        "",
        f"- Model `{model['name']}`: `{model['path']}`, files sha256 `{model['sha256']}`"
        if model["sha256"]
        else f"- Model `{model['name']}`: not found when the report was built ({model['unresolved']})",
        f"- Packages: {packages}",
    ]
    for stage in ("collect", "eval"):
        data = summary.get(stage, {}).get("data_files")
        if data:
            lines.append(
                f"- {stage} data: {data['tasks']} task(s) of split `{data['split']}` from `{data['path']}`, "
                f"content sha256 `{data['sha256']}`"
            )
    return lines + [""]
