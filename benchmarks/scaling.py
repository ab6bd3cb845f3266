"""The Ray backend against the local one: env steps per second with 1, 2 and 4 Ray env actors against the local
pool with as many worker processes, and (``--run-overhead``) the wall clock of the default run on each backend.

Env steps: ALFWorld games ``select_tasks(split, --games, seed=0)``, one per slot, all reset together, then
``--steps`` lockstep steps of benchmarks/env_steps.py's scripted actions (admissible action number
``(7 * t + 3) mod len(admissible)`` at step ``t``). Only the steps are timed (resets and actor start-up are
reported apart). Both backends must return the same results; the file says whether they did. The Ray rows run
on one private Ray of ``--ray-cpus`` CPUs, each actor reserving ``ray-cpus / max(--workers)`` CPUs.

Run overhead: ``prism-agents run experiments/alfworld.yaml`` with the overrides of ``RUN_OVERRIDES`` (a short
run: 8 demonstrations, 1 SFT epoch, 1 RL group of 2 episodes of at most 5 steps, 4 evaluation games of at most
10 steps) plus ``--override``s, once with ``cluster.backend=local`` and once with ``RAY_OVERRIDES``, each in its
own process with its own empty demonstration cache; ``--full-run`` times the whole default run instead, on the
user's demonstration cache (run it once before, so both runs find the demonstrations cached). The ratio of their wall clocks is the overhead; the file
also says whether both backends routed alike and evaluated the same tasks with the same greedy actions.

    python benchmarks/scaling.py --data-path $ALFWORLD_DATA                  # env steps
    python benchmarks/scaling.py --data-path $ALFWORLD_DATA --skip-env-steps --run-overhead
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from env_steps import scripted_action

from prism_agents.cluster.runtime import ray_runtime
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments import ALFWorldEnv, EnvSpec, SlotPool, open_env_pool, select_tasks

REPOSITORY = Path(__file__).resolve().parents[1]
RUN_CONFIG = REPOSITORY / "experiments" / "alfworld.yaml"
RUN_OVERRIDES = (
    "collect.num_tasks=8",
    "sft.epochs=1",
    "rl.iterations=1",
    "rl.tasks_per_iteration=1",
    "rl.group_size=2",
    "rl.max_steps=5",
    "eval.num_tasks=4",
    "eval.max_steps=10",
)
"""What keeps the benchmarked run short (on top of experiments/alfworld.yaml)."""
RAY_OVERRIDES = ("cluster.backend=ray", "cluster.env_worker_cpus=0.5")
"""The Ray run: the default cluster section with its two env actors at half a CPU each, which with the generator
replica's one CPU fill the private Ray's ``cluster.local_cpus: 2``."""


def play(pool: SlotPool, indices: list[int], steps: int) -> dict:
    """Reset every game, then time ``steps`` scripted lockstep steps; the digest covers every result."""
    digest = hashlib.sha256()
    start = time.perf_counter()
    resets = pool.reset(indices)
    reset_wall_s = time.perf_counter() - start
    infos = [info for _, info in resets]
    digest.update(json.dumps(resets, sort_keys=True, default=str).encode())
    active = [True] * len(indices)
    count = 0
    start = time.perf_counter()
    for t in range(steps):
        actions = [scripted_action(info["admissible_actions"], t) if alive else None for info, alive in zip(infos, active)]
        results = pool.step(actions)
        for slot, result in enumerate(results):
            if result is not None:
                _, _, terminated, truncated, infos[slot] = result
                active[slot] = not (terminated or truncated)
                count += 1
        digest.update(json.dumps(results, sort_keys=True, default=str).encode())
    step_wall_s = time.perf_counter() - start
    return {"steps": count, "step_wall_s": round(step_wall_s, 3), "steps_per_s": round(count / step_wall_s, 2),
            "reset_wall_s": round(reset_wall_s, 3), "results_sha256": digest.hexdigest()}


def time_backend(spec: EnvSpec, indices: list[int], steps: int, cluster: ClusterConfig) -> dict:
    start = time.perf_counter()
    with open_env_pool(spec, len(indices), cluster) as pool:
        startup_s = time.perf_counter() - start
        row = {"backend": cluster.backend, "workers": pool.num_workers, **play(pool, indices, steps)}
    return {**row, "startup_s": round(startup_s, 3)}


def env_steps(args: argparse.Namespace) -> dict:
    config = EnvironmentConfig(data_path=args.data_path, max_steps=args.steps)
    tasks = select_tasks(ALFWorldEnv.list_tasks(config, args.split), args.games, seed=0)
    indices = [task.index for task in tasks]
    rows = []
    for workers in args.workers:  # environment.num_workers processes
        spec = EnvSpec(dataclasses.replace(config, num_workers=workers), args.split)
        rows.append(time_backend(spec, indices, args.steps, ClusterConfig(backend="local")))
    ray_cluster = ClusterConfig(backend="ray", local_cpus=args.ray_cpus, object_store_mib=256,
                                env_worker_cpus=args.ray_cpus / max(args.workers))
    start = time.perf_counter()
    with ray_runtime(ray_cluster):
        ray_start_s = time.perf_counter() - start
        for workers in args.workers:  # cluster.env_workers actors
            cluster = dataclasses.replace(ray_cluster, env_workers=workers)
            rows.append(time_backend(EnvSpec(config, args.split), indices, args.steps, cluster))
    by_key = {(row["backend"], row["workers"]): row for row in rows}
    ratios = {str(w): round(by_key["ray", w]["steps_per_s"] / by_key["local", w]["steps_per_s"], 3) for w in args.workers}
    return {
        "split": args.split,
        "games": [task.task_id for task in tasks],
        "steps_per_game": args.steps,
        "ray": {"cpus": args.ray_cpus, "cpus_per_actor": ray_cluster.env_worker_cpus, "start_s": round(ray_start_s, 3)},
        "throughput": rows,
        "ray_over_local_steps_per_s": ratios,
        "same_results": len({row["results_sha256"] for row in rows}) == 1,
    }


def timed_run(backend_overrides: tuple[str, ...], args: argparse.Namespace, folder: Path) -> dict:
    """One ``prism-agents run`` in its own process; its wall clock, its stages' and its greedy evaluation actions."""
    short = () if args.full_run else (*RUN_OVERRIDES, f"environment.demo_cache_dir={folder / 'demos'}")
    overrides = [*short, *args.override, *backend_overrides, f"output_dir={folder / 'runs'}"]
    if args.data_path:
        overrides.append(f"environment.data_path={args.data_path}")
    command = [sys.executable, "-m", "prism_agents.cli", "run", str(RUN_CONFIG), *overrides]
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stderr[-4000:]}")
    run = Path(finished.stdout.strip().splitlines()[-1])
    compute = json.loads((run / "compute.json").read_text())
    episodes = [json.loads(line) for line in (run / "evaluation.jsonl").read_text().splitlines() if line]
    routing = [json.loads(line) for line in (run / "routing.jsonl").read_text().splitlines() if line]
    return {
        "overrides": overrides,
        "wall_s": round(wall_s, 2),
        "stage_wall_s": {stage: record.get("wall_clock_s") for stage, record in compute.items() if isinstance(record, dict)},
        "eval_tasks": [episode["task"]["task_id"] for episode in episodes],
        "eval_actions": [[step["action"] for step in episode["steps"]] for episode in episodes],
        "routing": [(record["trajectory_id"], record["destination"]) for record in routing],
    }


def run_overhead(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="prism-scaling-") as scratch:
        local = timed_run(("cluster.backend=local",), args, Path(scratch) / "local")
        ray = timed_run(RAY_OVERRIDES, args, Path(scratch) / "ray")
    compared = ("eval_tasks", "eval_actions", "routing")
    return {
        "config": str(RUN_CONFIG.relative_to(REPOSITORY)),
        "run": "the default run, demonstrations cached" if args.full_run else "short (RUN_OVERRIDES)",
        "local": {key: value for key, value in local.items() if key not in compared},
        "ray": {key: value for key, value in ray.items() if key not in compared},
        "ray_over_local_wall": round(ray["wall_s"] / local["wall_s"], 3),
        **{f"same_{key}": ray[key] == local[key] for key in compared},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-path", default=None, help="folder holding json_2.1.1 (default: $ALFWORLD_DATA)")
    parser.add_argument("--split", default="eval_out_of_distribution")
    parser.add_argument("--games", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="scripted lockstep steps per game")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker processes / env actors")
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the private Ray")
    parser.add_argument("--skip-env-steps", action="store_true", help="leave the env-steps section as it is")
    parser.add_argument("--run-overhead", action="store_true", help="also time the default run on both backends")
    parser.add_argument("--override", action="append", default=[], help="extra override for both runs (repeatable)")
    parser.add_argument("--full-run", action="store_true",
                        help="time the whole default run (no RUN_OVERRIDES) on the user's demonstration cache")
    parser.add_argument("--output", default="benchmarks/results/scaling.json")
    args = parser.parse_args()

    output = Path(args.output)
    result = json.loads(output.read_text()) if output.is_file() else {}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    if not args.skip_env_steps:
        load_before = os.getloadavg()[0]
        result["env_steps"] = env_steps(args)
        result["env_steps"]["load_average_1m"] = [load_before, os.getloadavg()[0]]  # before, after: others' work
        print(f"{'backend':<8} {'workers':>7} {'steps':>6} {'wall s':>8} {'steps/s':>8} {'start s':>8}")
        for row in result["env_steps"]["throughput"]:
            print(f"{row['backend']:<8} {row['workers']:>7} {row['steps']:>6} {row['step_wall_s']:>8.2f} "
                  f"{row['steps_per_s']:>8.2f} {row['startup_s']:>8.2f}")
        print(f"ray / local steps per second: {result['env_steps']['ray_over_local_steps_per_s']}, "
              f"same results: {result['env_steps']['same_results']}")
    if args.run_overhead:
        load_before = os.getloadavg()[0]
        result["run_overhead"] = run_overhead(args)
        result["run_overhead"]["load_average_1m"] = [load_before, os.getloadavg()[0]]
        overhead = result["run_overhead"]
        print(f"default run: local {overhead['local']['wall_s']} s, ray {overhead['ray']['wall_s']} s, "
              f"ratio {overhead['ray_over_local_wall']}, same eval actions: {overhead['same_eval_actions']}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(f"written to {output}")


if __name__ == "__main__":
    main()
