"""The comparison's ``report.md``: results per evaluation split, routing split, compute, the Pareto plot."""

from __future__ import annotations

from typing import Any

from prism_agents.comparison.results import REPORTED_STAGES
from prism_agents.reporting.rates import INTERVAL_NOTE, percent_text, record_interval
from prism_agents.reporting.report import TASK_TYPE_ORDER


def render_comparison(results: dict[str, Any], plot_file: str) -> str:
    """The Markdown report of a comparison's ``results``."""
    variants = results["variants"]
    seeds = results["seeds"]
    lines = [
        f"# Comparison {results['comparison']}",
        "",
        f"- Experiment: `{results['experiment']}`, varied as listed under [Variants](#variants); the ablation as run: "
        "[ablation.yaml](ablation.yaml)",
        f"- Model: `{results['model']}`; environment: `{results['environment']}`",
        f"- Seeds: {', '.join(map(str, seeds))}: every number is the mean over the {len(seeds)} seed(s)"
        + (", ± the sample standard deviation." if len(seeds) > 1 else " (one seed: no spread)."),
        f"- Brackets: the {INTERVAL_NOTE} of a success rate over its episodes"
        + (" (each seed's, under [Per seed](#per-seed))." if len(seeds) > 1 else "."),
        f"- Overrides of every variant: {_code(results['common_overrides']) or 'none'}",
        "",
    ]
    for split, description in results["splits"].items():
        lines += _results_section(variants, split, description)
    if len(seeds) > 1:
        lines += _per_seed_section(variants, seeds, list(results["splits"]))
    lines += _routing_section(variants)
    lines += _compute_section(variants, results["baseline"])
    lines += [
        "## Success against compute",
        "",
        f"![success rate against training compute]({plot_file})",
        "",
        f"`{plot_file}`: success rate on `{next(iter(results['splits']))}` (all seeds' episodes pooled) with its "
        f"{INTERVAL_NOTE} as an error bar, against the training stages' estimated FLOPs and wall clock; the line "
        "joins the variants no other variant beats on both."
        + (" The bars count episode sampling only, not the spread between seeds." if len(seeds) > 1 else ""),
        "",
    ]
    lines += _variants_section(variants)
    return "\n".join(lines) + "\n"


def comparison_headlines(results: dict[str, Any]) -> list[str]:
    """One line per variant: success rate and score on the first split, and the training cost."""
    split = next(iter(results["splits"]))
    seeds = len(results["seeds"])
    lines = []
    for variant, entry in results["variants"].items():
        evaluation, compute = entry["evaluation"][split], entry["compute"]
        episodes = "/".join(map(str, sorted(set(evaluation["episodes_per_seed"]))))
        speedup = compute.get("speedup_wall_clock")
        lines.append(
            f"{variant}: success rate {_success(evaluation, ' %')}{_seed_rates(evaluation, results['seeds'])}, "
            f"score {_percent(evaluation['score'])} ({split} split, {episodes} episodes x {seeds} seed(s), {INTERVAL_NOTE}); "
            f"training {compute['training_wall_clock_s']:.0f} s"
            + (f" ({_ratio(speedup)} vs {results['baseline']})" if results["baseline"] else "")
        )
    return lines


def _seed_rates(evaluation: dict[str, Any], seeds: list[int]) -> str:
    """`` (seed 0: 6.25 [1.1, 28.3], seed 1: ...)`` with several seeds; nothing with one."""
    if len(seeds) == 1:
        return ""
    rates = [f"seed {seed}: {percent_text(record_interval(record))}" for seed, record in zip(seeds, evaluation["success_intervals"])]
    return f" ({', '.join(rates)})"


def _results_section(variants: dict[str, Any], split: str, description: str) -> list[str]:
    task_types = _tabulated_task_types(variants, split)
    episodes = sorted({n for entry in variants.values() for n in entry["evaluation"][split]["episodes_per_seed"]})
    header = "| variant | success rate (%) | score (mean x100) |" + "".join(f" {t} (%) |" for t in task_types)
    lines = [
        f"## Evaluation on `{split}`",
        "",
        f"{description}; {'/'.join(map(str, episodes))} episodes per seed, each variant's final adapter. "
        "Success rate = episodes won (score 1); score = mean benchmark score x 100 "
        "(on ALFWorld equal to the success rate)."
        + (" Task-type columns: success rate on that type's episodes (n = its episodes over all seeds)." if task_types else ""),
        "",
        header,
        "| --- | ---: | ---: |" + " ---: |" * len(task_types),
    ]
    for variant, entry in variants.items():
        evaluation = entry["evaluation"][split]
        cells = [_success(evaluation), _percent(evaluation["score"])]
        cells += [_task_type_cell(evaluation["per_task_type"].get(t)) for t in task_types]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    failed = sum(entry["evaluation"][split]["failed_episodes"] for entry in variants.values())
    lines += ["", f"{failed} episode(s) failed to run (counted as lost) over all variants and seeds.", ""]
    return lines


def _per_seed_section(variants: dict[str, Any], seeds: list[int], splits: list[str]) -> list[str]:
    """Each seed's success rate with its interval, and its score, per evaluation split."""
    lines = ["## Per seed", ""]
    for split in splits:
        task_types = _tabulated_task_types(variants, split)
        lines += [
            f"On `{split}`: success rate (%) [{INTERVAL_NOTE}] over the seed's episodes; score = mean x100 (no interval)."
            + (" Task-type columns: that type's success rate (n = its episodes)." if task_types else ""),
            "",
            "| variant | seed | episodes | success rate (%) | score (mean x100) |" + "".join(f" {t} (%) |" for t in task_types),
            "| --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(task_types),
        ]
        for variant, entry in variants.items():
            evaluation = entry["evaluation"][split]
            for index, seed in enumerate(seeds):
                interval = record_interval(evaluation["success_intervals"][index])
                cells = [str(evaluation["episodes_per_seed"][index]), percent_text(interval)]
                cells.append(f"{100 * evaluation['score']['values'][index]:.2f}")
                for task_type in task_types:
                    row = evaluation["per_task_type"].get(task_type)
                    record = row["success_intervals"][index] if row else None
                    cells.append("-" if record is None else f"{percent_text(record_interval(record))} (n={record['episodes']})")
                lines.append(f"| {variant} | {seed} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _tabulated_task_types(variants: dict[str, Any], split: str) -> list[str]:
    """ALFWorld's task families, in the literature's order, when every evaluated type is one of them."""
    seen = {t for entry in variants.values() for t in entry["evaluation"][split]["per_task_type"]}
    return [t for t in TASK_TYPE_ORDER if t in seen] if seen <= set(TASK_TYPE_ORDER) else []


def _routing_section(variants: dict[str, Any]) -> list[str]:
    lines = [
        "## SFT : RL split",
        "",
        "Demonstrations routed (won expert demonstrations), counts per destination (mean over seeds), and the "
        "shares sent to SFT and to RL (`both` counts toward each); `-`: the variant evaluates the base model and "
        "routes nothing.",
        "",
        "| variant | router | routed | sft | rl | both | SFT : RL (%) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant, entry in variants.items():
        routing = entry["routing"]
        if routing is None:
            lines.append(f"| {variant} |" + " - |" * 6)
            continue
        counts = routing["destinations"]
        lines.append(
            f"| {variant} | `{routing['router']}` | {routing['demonstrations']:g} | {counts['sft']:g} | {counts['rl']:g} | "
            f"{counts['both']:g} | {100 * routing['sft_share']:.0f} : {100 * routing['rl_share']:.0f} |"
        )
    return lines + [""]


def _compute_section(variants: dict[str, Any], baseline: str | None) -> list[str]:
    speedup_header = f" speedup vs {baseline}: wall clock | speedup: FLOPs |" if baseline else ""
    stages = [s for s in REPORTED_STAGES if any(s in entry["compute"]["stages_run"] for entry in variants.values())]
    stage_header = "".join(f" {stage} (s) |" for stage in stages)
    lines = [
        "## Compute",
        "",
        "Wall clock per stage (seconds, mean over seeds). Training = probe + route + sft + reprobe + rl, the cost "
        "of the recipe (the paper's cost); collect (the expert's demonstrations) and eval are shown beside it. "
        "Tokens and FLOPs are those of the training stages; FLOPs are estimates (2N per forward token, 6N per "
        "trained or probed token, N = base parameters)."
        + (f" Speedup = {baseline}'s training cost / the variant's." if baseline else ""),
        "",
        f"| variant |{stage_header} training (s) | trained tokens | probed tokens | generated tokens | est. FLOPs |"
        + speedup_header,
        "| --- |" + " ---: |" * (len(stages) + 5 + (2 if baseline else 0)),
    ]
    for variant, entry in variants.items():
        compute = entry["compute"]
        seconds = compute["stage_wall_clock_s"]
        cells = [f"{seconds[stage]:.1f}" + ("*" if stage in compute["shared_stages"] else "") for stage in stages]
        cells += [
            f"{compute['training_wall_clock_s']:.1f}",
            f"{compute['trained_tokens']:.0f}",
            f"{compute['probed_tokens']:.0f}",
            f"{compute['generated_tokens']:.0f}",
            f"{compute['training_flops']:.3g}",
        ]
        if baseline:
            cells += [_ratio(compute["speedup_wall_clock"]), _ratio(compute["speedup_flops"])]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "\\* computed once and taken over from another run of this comparison with the same inputs; the time "
        "shown is what that run spent (each variant is charged the full cost of its recipe).",
        "",
    ]
    return lines


def _variants_section(variants: dict[str, Any]) -> list[str]:
    lines = ["## Variants", "", "| variant | overrides | run reports |", "| --- | --- | --- |"]
    for variant, entry in variants.items():
        links = ", ".join(f"[{run}](runs/{run}/report.md)" for run in entry["runs"])
        lines.append(f"| {variant} | {_code(entry['overrides']) or 'none'} | {links} |")
    return lines + [""]


def _percent(values: dict[str, Any], unit: str = "") -> str:
    text = f"{100 * values['mean']:.2f}"
    return text + unit if values["sd"] is None else f"{text} ± {100 * values['sd']:.2f}{unit}"


def _success(rates: dict[str, Any], unit: str = "") -> str:
    """One seed (or one that drew the task type): the rate with its interval; several: mean ± sd over seeds
    (their intervals: the per-seed table)."""
    drawn = [record for record in rates["success_intervals"] if record is not None]
    if len(drawn) == 1:
        return percent_text(record_interval(drawn[0]), unit)
    return _percent(rates["success_rate"], unit)


def _task_type_cell(task_type: dict[str, Any] | None) -> str:
    return "-" if task_type is None else f"{_success(task_type)} (n={task_type['episodes']})"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _code(items: list[str]) -> str:
    return " ".join(f"`{item}`" for item in items)
