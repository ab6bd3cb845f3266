"""ALFWorld environment throughput: steps per second in-process and with 1 vs N worker processes.

Plays a fixed set of games (``select_tasks(split, n, seed=0)``) with a fixed,
deterministic action script: at step ``t`` each game takes admissible action
number ``(7 * t + 3) mod len(admissible)``. Every game takes ``--steps``
actions (episodes that end early are skipped for the rest of the batch). The
in-process row is measured twice: with this project's textworld engine caches
(:mod:`prism_agents.environments.alfworld.textworld_caches`) and, in a fresh
process, on plain textworld. Also times the planner expert's reset (load + plan)
per game in-process.

    python benchmarks/env_steps.py --data-path $ALFWORLD_DATA --workers 2 \
        --output benchmarks/results/env_steps.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import time
from pathlib import Path

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments import ALFWorldEnv, EnvPool, EnvSpec, select_tasks
from prism_agents.environments.alfworld import textworld_caches


def scripted_action(admissible: list[str], step: int) -> str:
    return admissible[(7 * step + 3) % len(admissible)]


def run_in_process(config: EnvironmentConfig, split: str, indices: list[int], steps: int) -> dict:
    env = ALFWorldEnv.from_config(config, split)
    reset_s, step_s, count = [], 0.0, 0
    for index in indices:
        start = time.perf_counter()
        _, info = env.reset(options={"task": index})
        reset_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for t in range(steps):
            _, _, terminated, truncated, info = env.step(scripted_action(info["admissible_actions"], t))
            count += 1
            if terminated or truncated:
                break
        step_s += time.perf_counter() - start
    env.close()
    return {"mode": "in-process", "workers": 0, "steps": count, "step_wall_s": step_s, "steps_per_s": count / step_s,
            "reset_s_mean": statistics.mean(reset_s)}


def run_in_plain_textworld(config: EnvironmentConfig, split: str, indices: list[int], steps: int) -> dict:
    """:func:`run_in_process` on textworld without the engine caches (run it in a fresh process)."""
    textworld_caches.leave_out()
    return {**run_in_process(config, split, indices, steps), "mode": "plain textworld"}


def run_pool(config: EnvironmentConfig, split: str, indices: list[int], steps: int, workers: int) -> dict:
    start = time.perf_counter()
    with EnvPool(EnvSpec(config, split), num_slots=len(indices), num_workers=workers) as pool:
        startup_s = time.perf_counter() - start
        start = time.perf_counter()
        infos = [info for _, info in pool.reset(indices)]
        reset_wall_s = time.perf_counter() - start
        active = [True] * len(indices)
        count = 0
        start = time.perf_counter()
        for t in range(steps):
            actions = [scripted_action(info["admissible_actions"], t) if alive else None for info, alive in zip(infos, active)]
            for slot, result in enumerate(pool.step(actions)):
                if result is not None:
                    _, _, terminated, truncated, infos[slot] = result
                    active[slot] = not (terminated or truncated)
                    count += 1
        step_s = time.perf_counter() - start
    return {"mode": "pool", "workers": workers, "steps": count, "step_wall_s": step_s, "steps_per_s": count / step_s,
            "reset_wall_s": reset_wall_s, "worker_startup_s": startup_s}


def time_planner_resets(config: EnvironmentConfig, split: str, indices: list[int]) -> list[dict]:
    env = ALFWorldEnv.from_config(config, split, expert=True)
    rows = []
    for index in indices:
        start = time.perf_counter()
        _, info = env.reset(options={"task": index})
        rows.append({"task_id": info["task_id"], "task_type": info["task_type"], "reset_with_plan_s": time.perf_counter() - start})
    env.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-path", default=None, help="folder holding json_2.1.1 (default: $ALFWORLD_DATA)")
    parser.add_argument("--split", default="eval_out_of_distribution")
    parser.add_argument("--games", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="scripted actions per game")
    parser.add_argument("--workers", type=int, default=2, help="N of the 1-vs-N comparison")
    parser.add_argument("--plan-games", type=int, default=4, help="games whose planner reset is timed (0: skip)")
    parser.add_argument("--output", default="benchmarks/results/env_steps.json")
    args = parser.parse_args()

    config = EnvironmentConfig(data_path=args.data_path, max_steps=args.steps)
    tasks = select_tasks(ALFWorldEnv.list_tasks(config, args.split), args.games, seed=0)
    indices = [task.index for task in tasks]
    with multiprocessing.get_context("spawn").Pool(1) as fresh:
        rows = [fresh.apply(run_in_plain_textworld, (config, args.split, indices, args.steps))]
    rows.append(run_in_process(config, args.split, indices, args.steps))
    for workers in sorted({1, args.workers}):
        rows.append(run_pool(config, args.split, indices, args.steps, workers))
    plans = time_planner_resets(config, args.split, indices[: args.plan_games]) if args.plan_games else []

    result = {"split": args.split, "games": [task.task_id for task in tasks], "steps_per_game": args.steps,
              "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
              "throughput": rows, "planner_resets": plans}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))

    print(f"{'mode':<15} {'workers':>7} {'steps':>6} {'wall s':>8} {'steps/s':>8} {'reset s':>8}")
    for row in rows:
        reset = row.get("reset_s_mean", row.get("reset_wall_s"))
        print(f"{row['mode']:<15} {row['workers']:>7} {row['steps']:>6} {row['step_wall_s']:>8.2f} "
              f"{row['steps_per_s']:>8.2f} {reset:>8.2f}")
    print("reset s: mean per game in-process; wall clock of resetting all games for a pool")
    for plan in plans:
        print(f"planner reset {plan['task_type']:<6} {plan['reset_with_plan_s']:6.2f} s  {plan['task_id']}")
    print(f"written to {output}")


if __name__ == "__main__":
    main()
