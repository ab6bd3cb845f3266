"""One RL iteration of a finished run, measured again for each training-sequence layout, against the RL targets.

The run's RL stage is played again from its SFT adapter on copies of the run folder, once per
``rl.sequences`` layout, with the same config and seed (so the same episodes): ``episode`` (the engine now:
one sequence per episode) and ``step`` (one sequence per step, each holding its whole prompt: how the learner
trained before). Each replay is a ``prism-agents run --resume`` of the copy in a subprocess, with the
evaluation cut to one step of one episode; its ``rl_iterations.jsonl`` and ``compute.json`` give, per iteration, the adapter
sync (serving the committed adapter in the running engine and checking it), the rollouts (generation and
environment time), the update, the trained tokens and the padding share; the subprocess's CPU time over its
wall clock gives its CPU use (200 % = both cores of this machine). The episodes' own tokens (``served_tokens``:
with full history the last prompt plus the last completion of each episode) bound the trained tokens of one
epoch. The episode layout plays ``--iterations`` iterations so that the sync of versions after the first (the
engine already running) is measured; the step layout plays one.

The engine as it was before the in-place sync (an engine restart per adapter version) is no longer in the
code; its figures come from ``--before`` when that file is there (default
``benchmarks/results/rl_iteration_before.json``: this benchmark's output when run at commit 7ead269^, the last
with that engine, on the same config and machine; results are not committed, the README quotes them), and the
vLLM / HF+peft ratios of both its workloads (fresh prompts, conversations) from ``--generation``
(benchmarks/generation.py's output).

    python benchmarks/rl_iteration.py runs/alfworld-prism-20261201-150000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prism_agents.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from prism_agents.pipeline.run_folder import RunFolder

SYNC_TARGET_S = 0.5
ITERATION_SPEEDUP_TARGET = 3.0
VLLM_SPEEDUP_TARGET = 4.0
LAYOUTS = ("episode", "step")
GENERATION_WORKLOADS = {"fresh_prompts": "ratios_to_hf_lora", "conversations": "conversation_ratios_to_hf_lora"}
"""benchmarks/generation.py's workloads, by the key of their engines' ratios to HF + peft in its output."""


def replay(run: Path, layout: str, iterations: int, scratch: Path) -> dict:
    """The RL stage of ``run`` played again on a copy with ``rl.sequences=layout`` for ``iterations``: their
    timings, the stage's generation / environment time, and the subprocess's CPU use."""
    copy = scratch / f"{run.name}-{layout}"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("tensorboard", "wandb", "mlruns"))
    write_jsonl_atomic(copy / "rl_iterations.jsonl", [])
    RunFolder.open(copy).discard_from("rl")
    command = [sys.executable, "-m", "prism_agents.cli", "run", "--resume", str(copy), f"rl.sequences={layout}",
               f"rl.iterations={iterations}", "eval.num_tasks=1", "eval.max_steps=1"]
    before, started = os.times(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall, after = time.perf_counter() - started, os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    stage = json.loads((copy / "compute.json").read_text())["rl"]
    iterations = read_jsonl(copy / "rl_iterations.jsonl")
    keys = ("iteration", "episodes", "mean_steps", "success_rate", "sync_s", "sync_merge_s", "sync_reload_s",
            "sync_check_s", "rollout_s", "update_s", "served_tokens", "tokens_trained", "padding_share")
    return {
        "rl.sequences": layout,
        "iterations": [{key: line.get(key) for key in keys} for line in iterations],
        "generation_s": round(stage["generation_s"], 2),
        "env_s": round(stage["env_s"], 2),
        "process_wall_s": round(wall, 1),
        "process_cpu_percent": round(100 * cpu / wall, 1),
    }


def vllm_speedup(ratios: dict) -> dict:
    """The faster way of serving the adapter on vLLM in one workload of benchmarks/generation.py (``ratios``: each
    engine's generated tokens/s over HF + peft's), and its ratio."""
    best = max(("vllm_lora", "vllm_merged"), key=lambda mode: ratios[mode])
    return {"mode": best, "speedup": ratios[best]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_folder", type=Path, help="a finished prism-agents run with an rl stage")
    parser.add_argument("--iterations", type=int, default=3, help="RL iterations of the episode layout (>= 2 measures "
                        "the sync of versions after the first, with the engine running)")
    parser.add_argument("--before", type=Path, default=Path("benchmarks/results/rl_iteration_before.json"))
    parser.add_argument("--generation", type=Path, default=Path("benchmarks/results/generation.json"))
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/rl_iteration.json"))
    args = parser.parse_args()
    if not (args.run_folder / "rl_iterations.jsonl").is_file():
        raise SystemExit(f"{args.run_folder}: no rl_iterations.jsonl (a run whose rl stage ran is needed)")
    if not args.generation.is_file():
        raise SystemExit(f"{args.generation}: not found (results are not committed; python benchmarks/generation.py "
                         "writes it)")

    with tempfile.TemporaryDirectory(prefix="rl-iteration-") as scratch:
        layouts = {
            layout: replay(args.run_folder, layout, args.iterations if layout == "episode" else 1, Path(scratch))
            for layout in LAYOUTS
        }
    now, old_layout = layouts["episode"]["iterations"][0], layouts["step"]["iterations"][0]
    before = json.loads(args.before.read_text())["iterations"][0] if args.before.is_file() else None
    generation = json.loads(args.generation.read_text())
    vllm_speedups = {workload: vllm_speedup(generation[key]) for workload, key in GENERATION_WORKLOADS.items()}
    rollout = sum(line["rollout_s"] for line in layouts["episode"]["iterations"])
    env_share = layouts["episode"]["env_s"] / rollout if rollout else 0.0
    iteration_now = now["sync_s"] + now["rollout_s"] + now["update_s"]
    iteration_before = before["sync_s"] + before["rollout_s"] + before["update_s"] if before else None
    iteration_speedup = round(iteration_before / iteration_now, 2) if before else None
    same_episodes = (now["episodes"], now["mean_steps"], now["success_rate"]) == (
        old_layout["episodes"], old_layout["mean_steps"], old_layout["success_rate"]
    )
    result = {
        "run": args.run_folder.name,
        "layouts": layouts,
        "same_episodes_in_both_layouts": same_episodes,
        "update_speedup_episode_vs_step": round(old_layout["update_s"] / now["update_s"], 2),
        "trained_tokens_episode_vs_step": [now["tokens_trained"], old_layout["tokens_trained"]],
        "served_tokens": now["served_tokens"],
        "before": {"source": str(args.before), "iteration": before},
        "first_iteration_s": {"now": round(iteration_now, 1), "before": iteration_before and round(iteration_before, 1)},
        "iteration_speedup_vs_before": iteration_speedup,
        "env_share_of_rollout": round(env_share, 4),
        "vllm_vs_hf_generation": {"source": str(args.generation), **vllm_speedups},
        "targets": {
            "sync_s_at_most": SYNC_TARGET_S,
            "iteration_speedup_at_least": ITERATION_SPEEDUP_TARGET,
            "vllm_speedup_at_least": VLLM_SPEEDUP_TARGET,
        },
    }
    later_syncs = [line["sync_s"] for line in layouts["episode"]["iterations"][1:]]
    result["targets_met"] = {
        "sync_after_engine_start": bool(later_syncs) and max(later_syncs) <= SYNC_TARGET_S,
        "iteration_speedup": iteration_speedup and iteration_speedup >= ITERATION_SPEEDUP_TARGET,
        "trained_tokens_within_served": now["tokens_trained"] <= now["served_tokens"],
        **{f"vllm_speedup_{workload}": measured["speedup"] >= VLLM_SPEEDUP_TARGET for workload, measured in vllm_speedups.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output, result)

    print(f"run {result['run']}: first RL iteration replayed per rl.sequences layout (same config and seed)")
    print(f"served tokens of the first iteration's episodes: {now['served_tokens']:.0f}")
    print(f"{'layout':<8} {'sync s':>7} {'rollout s':>9} {'update s':>8} {'trained tok':>11} {'padding':>7} {'CPU %':>6}")
    for layout, measured in layouts.items():
        first = measured["iterations"][0]
        print(f"{layout:<8} {first['sync_s']:>7.2f} {first['rollout_s']:>9.1f} {first['update_s']:>8.1f} "
              f"{first['tokens_trained']:>11.0f} {first['padding_share']:>7.3f} {measured['process_cpu_percent']:>6.1f}")
    if before:
        print(f"before (engine restart per version, one sequence per step; {args.before}): sync {before['sync_s']:.2f} s, "
              f"rollout {before['rollout_s']:.1f} s, update {before['update_s']:.1f} s, {before['tokens_trained']:.0f} tokens")
        print(f"first iteration {iteration_now:.1f} s now vs {iteration_before:.1f} s before: {iteration_speedup}x "
              f"(target >= {ITERATION_SPEEDUP_TARGET}x)")
    else:
        print(f"first iteration {iteration_now:.1f} s; not compared with the engine before the in-place sync: no {args.before} "
              "on this machine (this benchmark run at commit 7ead269^ writes it)")
    print(f"sync of later versions (engine running): {later_syncs or 'only one iteration'} (target <= {SYNC_TARGET_S} s)")
    speedups = "; ".join(f"{workload.replace('_', ' ')}: {measured['mode']} {measured['speedup']}x"
                         for workload, measured in vllm_speedups.items())
    print(f"environment {100 * env_share:.1f} % of rollout wall clock; generated tokens/s of vLLM with the current weights "
          f"vs HF + peft at batch 16 (target >= {VLLM_SPEEDUP_TARGET}x), from {args.generation}: {speedups}")
    print(f"same episodes in both layouts: {same_episodes}; targets met: {result['targets_met']}; written to {args.output}")


if __name__ == "__main__":
    main()
