"""Does RL learn on a real environment? SFT, then GRPO iterations, judged on held-out games with 95 % intervals.

The benchmark drives the real pipeline through the ``prism-agents`` command, with
its own experiment config (``benchmarks/configs/rl_learning.yaml``: ALFWorld's
pick, look and heat games, every demonstration to SFT and its task to RL):

1. ``prism-agents run CONFIG``: collect expert demonstrations, SFT (adapter v1),
   ``rl.iterations`` GRPO iterations (adapters v2, v3, ...), then the held-out
   evaluation of the final adapter (``eval.split``, greedy);
2. ``prism-agents eval CONFIG --adapter RUN/adapters/v1``: the same held-out
   evaluation (same games, same decoding) of the SFT adapter, RL's start.

It reports the success rate of each RL iteration's own sampled episodes (train
tasks, from ``rl_iterations.jsonl``) and of the held-out evaluations before and
after RL, each with its 95 % Wilson score interval and episode count, the games
whose outcome changed, the wall clock, and a plain conclusion: RL beat its SFT
start only when the two held-out intervals do not overlap; otherwise it says so
and how many held-out episodes the observed rates would need.

    ALFWORLD_DATA=/root/.cache/alfworld python benchmarks/rl_learning.py             # about 40 min, idle 2-core CPU
    ALFWORLD_DATA=/root/.cache/alfworld python benchmarks/rl_learning.py --quick     # a few minutes: checks it runs
    python benchmarks/rl_learning.py --runs-dir /tmp/rl_learning_runs rl.iterations=8

Results: ``benchmarks/results/rl_learning.json``; ``--quick`` writes
``<runs dir>/rl_learning_quick.json`` instead, since its tiny sizes measure nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

import prism_agents.environments  # noqa: F401  (registers the built-in environments)
from prism_agents.io import read_json, read_jsonl, write_json_atomic
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.registry import ENVIRONMENTS
from prism_agents.reporting.intervals import RateInterval, format_interval, wilson_interval

QUICK_OVERRIDES = (
    "collect.num_tasks=4",
    "sft.epochs=1",
    "rl.iterations=2",
    "rl.tasks_per_iteration=1",
    "rl.group_size=2",
    "rl.max_steps=3",
    "eval.num_tasks=4",
    "eval.max_steps=3",
)
"""Sizes of ``--quick``: every stage runs, on a few tiny episodes."""
DEFAULT_OUTPUT = Path("benchmarks/results/rl_learning.json")
"""Where the full benchmark's results go."""
SFT_KEYS = ("trajectories", "examples", "epochs", "trained_tokens", "final_loss", "adapter")
"""What the results keep of the ``sft`` stage's result."""
RL_KEYS = ("learner", "advantage", "split", "tasks", "iterations", "episodes_per_iteration", "adapter")
"""What the results keep of the ``rl`` stage's result (absent ones are null: a skipped RL stage has fewer)."""
SMALLEST_GAIN = 0.10
"""Gain over the SFT success rate the conclusion sizes the held-out evaluation for when RL gained nothing."""
LARGEST_EVALUATION = 1_000_000
"""Held-out episodes beyond which the conclusion stops searching for a size that separates the intervals."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config, for both commands")
    parser.add_argument("--config", type=Path, default=Path("benchmarks/configs/rl_learning.yaml"))
    parser.add_argument("--runs-dir", type=Path, help="folder of the two run folders (default: the config's output_dir)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few minutes: checks that the benchmark runs")
    parser.add_argument("--output", type=Path, help="results file (default: benchmarks/results/rl_learning.json; "
                        "with --quick, rl_learning_quick.json in the runs folder)")
    args = parser.parse_args()
    name = yaml.safe_load(args.config.read_text())["name"] + ("-quick" if args.quick else "")
    overrides = [*(QUICK_OVERRIDES if args.quick else ()), *args.overrides]
    if args.runs_dir:
        overrides.append(f"output_dir={args.runs_dir}")

    load_before, started = os.getloadavg()[0], time.perf_counter()
    run = prism_agents("run", str(args.config), *overrides, f"name={name}")
    run_s = time.perf_counter() - started
    sft_adapter = read_json(run / "stages.json")["sft"]["result"]["adapter"]
    if sft_adapter is None:
        raise SystemExit(f"rl_learning: {run} trained no SFT adapter; router.name must send demonstrations to SFT (both)")
    clock = time.perf_counter()
    adapter = ["--adapter", str(run / sft_adapter)]
    sft_eval = prism_agents("eval", str(args.config), *adapter, *overrides, f"name={name}-sft-eval")
    sft_eval_s = time.perf_counter() - clock

    result = collect_results(run, sft_eval, args, overrides)
    result["wall_clock_s"] = {
        "total": round(time.perf_counter() - started, 1),
        "run_command": round(run_s, 1),
        "sft_eval_command": round(sft_eval_s, 1),
        "run_stages": stage_wall_clocks(run),
        "sft_eval_stages": stage_wall_clocks(sft_eval),
    }
    result["machine"] = {"cpus": os.cpu_count(), "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]}}
    output = args.output or (run.parent / "rl_learning_quick.json" if args.quick else DEFAULT_OUTPUT)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, result)
    print("\n".join(["", *table_lines(result), "", f"results written to {output}"]))


def prism_agents(*arguments: str) -> Path:
    """Run ``prism-agents ARGUMENTS`` in this interpreter, its output shown as it comes; the run folder it printed last."""
    command = [sys.executable, "-m", "prism_agents.cli", *arguments]
    print(f"$ prism-agents {' '.join(arguments)}", flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            lines.append(line.strip())
    if process.returncode != 0 or not lines:
        raise SystemExit(f"rl_learning: prism-agents {arguments[0]} failed (exit status {process.returncode}), output above")
    return Path(lines[-1])


def stage_wall_clocks(folder: Path) -> dict[str, float]:
    """Stage -> seconds, from ``folder``'s ``compute.json``."""
    return {stage: record["wall_clock_s"] for stage, record in read_json(folder / "compute.json").items()}


def collect_results(run: Path, sft_eval: Path, args: argparse.Namespace, overrides: list[str]) -> dict[str, Any]:
    """What the two run folders measured: per RL iteration and held-out before / after, with intervals."""
    stages = read_json(run / "stages.json")
    before, after = held_out(sft_eval), held_out(run)
    won_before, won_after = outcomes(sft_eval), outcomes(run)
    if won_before.keys() != won_after.keys():
        raise SystemExit(f"rl_learning: {sft_eval} and {run} evaluated different tasks; the comparison needs the same ones")
    iterations = [rl_iteration(line) for line in read_jsonl(run / "rl_iterations.jsonl")]
    changed = [(won_before[task], won_after[task]) for task in won_before]
    return {
        "benchmark": "rl_learning",
        "quick": args.quick,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config_file": str(args.config),
        "overrides": overrides,
        "config": yaml.safe_load((run / "config.yaml").read_text()),
        "run_folder": str(run),
        "sft_eval_folder": str(sft_eval),
        "sft": {key: stages["sft"]["result"][key] for key in SFT_KEYS},
        "rl": {key: stages["rl"]["result"].get(key) for key in RL_KEYS},
        "rl_iterations": iterations,
        "held_out": {
            "before_rl": before,
            "after_rl": after,
            "games_won_only_before_rl": changed.count((True, False)),
            "games_won_only_after_rl": changed.count((False, True)),
            "games_won_by_both": changed.count((True, True)),
        },
        "conclusion": conclusion(
            interval_of(before), interval_of(after), sum(line["episodes"] for line in iterations), held_out_games(run)
        ),
    }


def held_out(folder: Path) -> dict[str, Any]:
    """The ``eval`` stage of ``folder``: what it played, its success with the interval, and its score."""
    result = read_json(folder / "stages.json")["eval"]["result"]
    interval = wilson_interval(int(result["successes"]), int(result["episodes"]))
    return {
        "split": result["split"],
        "data": result["data"],
        "policy": result["policy"],
        "decoding": result["decoding"],
        "max_steps": result["max_steps"],
        "episodes": result["episodes"],
        "successes": result["successes"],
        "success": dataclasses.asdict(interval),
        "mean_score": result["mean_score"],
        "mean_steps": result["mean_steps"],
        "failed_episodes": result["failed_episodes"],
        "per_task_type": result["per_task_type"],
    }


def outcomes(folder: Path) -> dict[str, bool]:
    """Task id -> won, for every episode of ``folder``'s evaluation."""
    return {episode["task"]["task_id"]: episode["won"] for episode in read_jsonl(folder / "evaluation.jsonl")}


def rl_iteration(line: dict[str, Any]) -> dict[str, Any]:
    """One line of ``rl_iterations.jsonl``: its own episodes' success with an interval, and its timings."""
    episodes = int(line["episodes"])
    successes = round(line["success_rate"] * episodes)
    return {
        "iteration": line["iteration"],
        "adapter": line["adapter"],
        "played_with": line["played_with"],
        "episodes": episodes,
        "successes": successes,
        "success": dataclasses.asdict(wilson_interval(successes, episodes)),
        "mean_score": line["mean_score"],
        "mean_steps": line["mean_steps"],
        "invalid_action_rate": line["invalid_action_rate"],
        **{key: round(line[key], 2) for key in ("sync_s", "rollout_s", "update_s") if key in line},
    }


def held_out_games(run: Path) -> int:
    """How many tasks the run's evaluation split holds (with its ``environment.task_types``)."""
    config = RunFolder.open(run).config
    return len(ENVIRONMENTS.get(config.environment.name).list_tasks(config.environment, config.eval.split))


def interval_of(record: dict[str, Any]) -> RateInterval:
    return RateInterval(**record["success"])


def conclusion(before: RateInterval, after: RateInterval, rl_episodes: int, held_out_games: int) -> str:
    """Whether RL beat its SFT start on the held-out games, in plain words with the numbers; when it did not,
    how many held-out episodes would tell the rates apart."""
    numbers = f"held-out before RL: {format_interval(before)}; after RL: {format_interval(after)}; {rl_episodes} RL episodes"
    if after.low > before.high:
        return f"RL beat its SFT start: the 95 % intervals do not overlap ({numbers})."
    if after.high < before.low:
        return f"RL made the policy worse than its SFT start: the 95 % intervals do not overlap ({numbers})."
    gain = after.rate - before.rate
    if gain > 0:
        change, target, what = f"RL gained {gain:.3f} in success rate, within the noise", after.rate, "that gain"
    else:
        change = "RL's success rate did not change" if gain == 0 else f"RL lost {-gain:.3f} in success rate"
        target, what = min(1.0, before.rate + SMALLEST_GAIN), f"a gain of {SMALLEST_GAIN:.2f} over the SFT rate"
    needed = separating_size(before.rate, target)
    size = f"about {needed}" if needed else f"more than {LARGEST_EVALUATION}"
    lines = [
        f"RL did not beat its SFT start: the 95 % intervals overlap ({numbers}). {change}.",
        f"Telling {what} apart at these rates needs {size} held-out episodes per evaluation",
    ]
    if needed is None or needed > held_out_games:
        lines[-1] += (
            f", more than the {held_out_games} games the held-out split holds for these task types "
            "(more task types or another benchmark)"
        )
    if gain <= 0:
        lines[-1] += "; and first an RL budget that gains it: more iterations, more episodes per iteration"
    return " ".join(lines) + "."


def separating_size(rate: float, other: float) -> int | None:
    """The fewest episodes n for which intervals at the two rates (n episodes each) stop overlapping; None beyond
    :data:`LARGEST_EVALUATION` (or when the rates are equal)."""
    n = 1
    while n <= LARGEST_EVALUATION:
        if not wilson_interval(round(rate * n), n).overlaps(wilson_interval(round(other * n), n)):
            return n
        n += max(1, n // 100)  # 1 % steps: the answer is an order of magnitude, not an exact count
    return None


def table_lines(result: dict[str, Any]) -> list[str]:
    """The printed table: every row says which split, policy and how many episodes its numbers are over."""
    held = result["held_out"]
    before, after = held["before_rl"], held["after_rl"]
    header = "rl_learning (--quick: tiny sizes, numbers measure nothing)" if result["quick"] else "rl_learning"
    environment, sft, wall = result["config"]["environment"], result["sft"], result["wall_clock_s"]
    load = result["machine"]["load_average_1min"]
    lines = [
        f"{header}: {environment['name']} {', '.join(environment['task_types']) or 'all task types'}, "
        f"model {result['config']['model']['name']}; success rate = share of episodes won, [95 % Wilson interval]",
        f"SFT: {sft['trajectories']} demonstrations x {sft['epochs']} epoch(s), "
        f"{sft['trained_tokens']} tokens trained, final action-token loss {sft['final_loss']:.3f}",
        f"held-out data: {after['data']}, at most {after['max_steps']} steps an episode",
        row(f"held-out before RL ({before['split']}, SFT {sft['adapter']}, {before['decoding']})", before),
    ]
    for line in result["rl_iterations"]:
        label = f"RL iteration {line['iteration']} own episodes ({result['rl']['split']}, sampled with {line['played_with']})"
        steps = f"{line['mean_steps']:.1f} steps/episode, invalid actions {line['invalid_action_rate']:.3f}"
        lines.append(f"{row(label, line)}; {steps}")
    lines += [
        row(f"held-out after RL ({after['split']}, final {after['policy']}, {after['decoding']})", after),
        f"held-out games won only before RL: {held['games_won_only_before_rl']}, "
        f"only after: {held['games_won_only_after_rl']}, by both: {held['games_won_by_both']} (of {after['episodes']})",
        f"wall clock: {wall['total']:.0f} s in all "
        f"(run {wall['run_command']:.0f} s, SFT evaluation {wall['sft_eval_command']:.0f} s; {result['machine']['cpus']} CPUs, "
        f"1-min load average {load['start']:.1f} at the start, {load['end']:.1f} at the end)",
        "",
        result["conclusion"],
    ]
    return lines


def row(label: str, record: dict[str, Any]) -> str:
    """``label: success 0.250 [0.160, 0.368] (n=64 episodes), score 25.0 (mean benchmark score x100)``."""
    score = f"score {100 * record['mean_score']:.1f} (mean benchmark score x100)"
    return f"{label}: {format_interval(interval_of(record))}, {score}"


if __name__ == "__main__":
    main()
