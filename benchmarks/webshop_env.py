"""WebShop environment: index build time, search latency, steps per second and the oracle expert's success.

On one catalog (default: the 1000-product one in ``$WEBSHOP_DATA``) it measures

- the BM25 index build, into a fresh cache folder, and its load from that cache;
- search latency over the split's goal instructions;
- in-process environment steps per second (search, page rendering and, on the
  buying step, the reward) while the oracle expert plays every goal of the
  split (``--goals`` caps how many), and the expert's success rate
  (reward exactly 1.0) and score (mean reward x 100) on those goals, with the
  reasons of its failures counted.

    python benchmarks/webshop_env.py --split test --output benchmarks/results/webshop_env.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments import WebShopEnv
from prism_agents.environments.webshop.catalog import find_catalog_files, load_catalog
from prism_agents.environments.webshop.search import SearchIndex
from prism_agents.environments.webshop.shop import resolve_data_dir
from prism_agents.reporting.rates import INTERVAL_NOTE, rate_text


def time_index(data_path: str | None, catalog_name: str) -> dict:
    catalog = load_catalog(find_catalog_files(resolve_data_dir(data_path), catalog_name))
    with tempfile.TemporaryDirectory() as cache:
        built = SearchIndex.open(catalog, Path(cache))
        start = time.perf_counter()
        SearchIndex.open(catalog, Path(cache))
        load_s = time.perf_counter() - start
    return {"products": len(catalog.products), "index_build_s": built.build_s, "index_load_s": load_s}


def play_expert(env: WebShopEnv, count: int) -> dict:
    """The oracle on the first ``count`` goals of the split: success, score, failures, step and search timing."""
    rewards, failures, steps, search_s = [], Counter(), 0, []
    step_s = 0.0
    for index in range(count):
        _, info = env.reset(options={"task": index})
        goal_asin = env.goal["asin"]
        while info["expert_action"] is not None:
            action = info["expert_action"]
            if action.startswith("search["):
                start = time.perf_counter()
                env.shop.index.search(action[len("search[") : -1])
                search_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            _, _, terminated, truncated, info = env.step(action)
            step_s += time.perf_counter() - start
            steps += 1
            if terminated or truncated:
                break
        rewards.append(info["score"])
        if not info["won"]:
            failures[_failure_kind(info, goal_asin)] += 1
    return {
        "goals": count,
        "successes": sum(reward == 1.0 for reward in rewards),
        "success_rate": sum(reward == 1.0 for reward in rewards) / count,
        "score_x100": 100 * statistics.mean(rewards),
        "failures": dict(failures),
        "steps": steps,
        "steps_per_s": steps / step_s,
        "search_ms_mean": 1000 * statistics.mean(search_s),
        "searches": len(search_s),
    }


def _failure_kind(info: dict, goal_asin: str) -> str:
    if "purchase" in info:
        return "bought the goal product, reward below 1.0" if info["purchase"]["asin"] == goal_asin else "bought another product"
    if info.get("expert_error"):
        return "search did not surface the goal product"
    return "ran out of steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-path", default=None, help="folder holding items_shuffle_1000.json etc. (default: $WEBSHOP_DATA)")
    parser.add_argument("--catalog", default="1000")
    parser.add_argument("--split", default="test")
    parser.add_argument("--goals", type=int, default=0, help="goals of the split to play (0: all)")
    parser.add_argument("--output", default="benchmarks/results/webshop_env.json")
    args = parser.parse_args()

    index = time_index(args.data_path, args.catalog)
    config = EnvironmentConfig(name="webshop", data_path=args.data_path, max_steps=15, expert="oracle",
                               params={"catalog": args.catalog})
    env = WebShopEnv.from_config(config, args.split, expert=True)
    count = len(env.tasks()) if args.goals <= 0 else min(args.goals, len(env.tasks()))
    expert = play_expert(env, count)
    result = {
        "data": WebShopEnv.split_description(config, args.split),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **index,
        "expert": expert,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(result["data"])
    print(f"index build {index['index_build_s']:.3f} s, load from cache {index['index_load_s']:.3f} s ({index['products']} products)")
    print(f"search: {expert['search_ms_mean']:.3f} ms mean over {expert['searches']} searches")
    print(f"env: {expert['steps_per_s']:.1f} steps/s in-process over {expert['steps']} oracle steps")
    print(
        f"oracle on {args.split} ({expert['goals']} goals): success rate "
        f"{rate_text({'successes': expert['successes'], 'episodes': expert['goals']}, ' %')} "
        f"({expert['successes']}/{expert['goals']}, {INTERVAL_NOTE}), score {expert['score_x100']:.2f} (mean reward x100)"
    )
    for reason, number in sorted(expert["failures"].items()):
        print(f"  failed: {reason}: {number}")
    print(f"written to {output}")


if __name__ == "__main__":
    main()
