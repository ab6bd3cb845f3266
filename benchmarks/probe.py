"""Cost of PRISM's gradient probe against its floor, one SFT forward + backward on the same tokens.

One run loads ``--tasks`` real ALFWorld expert trajectories (the demonstration
cache; the planner plays the games not cached yet) of ``--split``, renders them
as the default ALFWorld config does (``history: full``, no admissible-action
list) and times, on the same examples, in interleaved rounds:

* ``floor``: the SFT learner's work per batch without the optimizer step:
  ``action_token_loss`` + ``backward`` with the LoRA adapter trainable;
* ``probe``: :class:`~prism_agents.routers.probe.GradientProbe` on the frozen
  base model (forward, backward, 7L gradient norms);
* ``losses_only``: the probe's gradient-free pass (the ``loss`` router).

Each is measured one trajectory at a time (``loop``) and in the probe's padded
batches of ``--batch-tokens`` (``batched``, the floor on the same batches).
Every timing is the fastest of ``--repeats`` rounds, which damps the noise of a
shared machine. The probe's target is to cost at most 1.5x its floor. Memory
grows with the tokens of a batch (activations kept for the backward pass), so
the default budget is small enough for a shared CPU machine.

With ``--run-folder RUN_DIR`` (a finished ``prism-agents run``), the result
also records that run's wall clock per stage from its ``compute.json`` and the
probe stage's share of the whole.

    python benchmarks/probe.py                     # embedded SmolLM2-135M-Instruct, 8 train games
    python benchmarks/probe.py --tasks 16 --batch-tokens 8192
    python benchmarks/probe.py --run-folder runs/alfworld-prism-20261123-024000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.config.training import PromptConfig
from prism_agents.environments import ALFWorldEnv, collect_demonstrations, select_tasks
from prism_agents.learners.tokens import action_token_loss, collate
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.routers.probe import GradientProbe
from prism_agents.types import Trajectory

TARGET_RATIO = 1.5


def expert_trajectories(data_path: str | None, split: str, count: int) -> list[Trajectory]:
    """Won planner demonstrations of the first ``count`` tasks ``select_tasks(split, count, seed=0)`` picks."""
    config = EnvironmentConfig(data_path=data_path)
    try:
        tasks = ALFWorldEnv.list_tasks(config, split)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"benchmarks/probe.py needs the ALFWorld games (--data-path or $ALFWORLD_DATA): {error}") from error
    trajectories = [t for t in collect_demonstrations(config, select_tasks(tasks, count, seed=0)) if t.failure is None]
    if not trajectories:
        raise SystemExit(f"no expert demonstration succeeded on the {count} {split} tasks")
    return trajectories


def floor_seconds(policy: Policy, examples: list) -> float:
    """Seconds of one SFT forward + backward (adapter trainable) on ``examples`` as one padded batch."""
    ids, attention, mask = collate(examples, policy.tokenizer.pad_token_id, policy.device)
    policy.model.train()
    start = time.perf_counter()
    loss, _ = action_token_loss(policy.model, ids, attention, mask)
    loss.backward()
    seconds = time.perf_counter() - start
    policy.model.zero_grad(set_to_none=True)
    policy.model.eval()
    return seconds


def run_share(folder: Path) -> dict:
    """Wall clock per stage of a finished run (its ``compute.json``) and the probe stage's share of the total."""
    compute_file = folder / "compute.json"
    if not compute_file.is_file():
        raise SystemExit(f"--run-folder {folder}: no compute.json (is it a run folder?)")
    stages = json.loads(compute_file.read_text())
    if "probe" not in stages:
        raise SystemExit(f"--run-folder {folder}: the run has no probe stage")
    seconds = {name: spent["wall_clock_s"] for name, spent in stages.items()}
    total = sum(seconds.values())
    return {"run": folder.name, "stage_seconds": seconds, "total_s": round(total, 1), "probe_share": round(seconds["probe"] / total, 4)}


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model.name: embedded name or checkpoint folder")
    parser.add_argument("--data-path", default=None, help="folder holding json_2.1.1 (default: $ALFWORLD_DATA)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--tasks", type=int, default=8, help="expert trajectories to probe")
    parser.add_argument("--batch-tokens", type=int, default=2048, help="padded-token budget of a batched probe")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; every timing is the fastest round")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/probe.json"))
    parser.add_argument("--run-folder", type=Path, default=None, help="a finished run whose probe share to record")
    args = parser.parse_args()
    default_run = run_share(args.run_folder) if args.run_folder else None

    trajectories = expert_trajectories(args.data_path, args.split, args.tasks)
    policy = Policy.load(ModelConfig(name=args.model, device="cpu"), LoraConfig())
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="full", max_admissible_actions=0), "alfworld")
    loop = GradientProbe(policy, prompts)
    batched = GradientProbe(policy, prompts, batch_tokens=args.batch_tokens)
    examples = [loop.examples(trajectory) for trajectory in trajectories]
    batches = batched.batches(examples)
    loop.probe(trajectories[:1])  # warm-up: first-call allocations and kernel choices

    rounds: list[dict[str, list[float]]] = []
    for _ in range(args.repeats):
        times: dict[str, list[float]] = {"floor_loop": [], "probe_loop": [], "losses_only_loop": []}
        for trajectory, item in zip(trajectories, examples):
            times["floor_loop"].append(floor_seconds(policy, item))
            times["probe_loop"].append(timed(lambda: loop.probe([trajectory])))
            times["losses_only_loop"].append(timed(lambda: loop.probe([trajectory], gradients=False)))
        times["floor_batched"] = [
            sum(floor_seconds(policy, [e for index in batch for e in examples[index]]) for batch in batches)
        ]
        times["probe_batched"] = [timed(lambda: batched.probe(trajectories))]
        times["losses_only_batched"] = [timed(lambda: batched.probe(trajectories, gradients=False))]
        rounds.append(times)
    best = {name: [min(r[name][i] for r in rounds) for i in range(len(rounds[0][name]))] for name in rounds[0]}
    totals = {name: round(sum(values), 3) for name, values in best.items()}
    ratios = {
        "probe_loop": round(totals["probe_loop"] / totals["floor_loop"], 3),
        "probe_batched": round(totals["probe_batched"] / totals["floor_batched"], 3),
        "losses_only_loop": round(totals["losses_only_loop"] / totals["floor_loop"], 3),
        "losses_only_batched": round(totals["losses_only_batched"] / totals["floor_batched"], 3),
    }
    tokens = [sum(len(e.input_ids) for e in item) for item in examples]
    result = {
        "model": policy.base_model_path,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "prompt": {"history": "full", "max_admissible_actions": 0},
        "trajectories": [
            {"trajectory_id": t.trajectory_id, "steps": len(t.steps), "tokens": n, "floor_s": round(f, 3),
             "probe_s": round(p, 3), "ratio": round(p / f, 3)}
            for t, n, f, p in zip(trajectories, tokens, best["floor_loop"], best["probe_loop"])
        ],
        "batches": [[trajectories[index].trajectory_id for index in batch] for batch in batches],
        "tokens": sum(tokens),
        "seconds": totals,
        "tokens_per_s": {name: round(sum(tokens) / seconds, 1) for name, seconds in totals.items()},
        "ratio_to_floor": ratios,
        "target_ratio": TARGET_RATIO,
        "target_met": {name: ratios[name] <= TARGET_RATIO for name in ("probe_loop", "probe_batched")},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "run_share": default_run,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(trajectories)} trajectories, {sum(tokens)} tokens, {torch.get_num_threads()} torch threads")
    print(f"{'measure':<22}{'seconds':>9}{'tokens/s':>10}{'x floor':>9}")
    for name, seconds in totals.items():
        floor = totals["floor_batched" if name.endswith("batched") else "floor_loop"]
        print(f"{name:<22}{seconds:>9.2f}{sum(tokens) / seconds:>10.1f}{seconds / floor:>9.2f}")
    if default_run:
        print(f"probe stage: {100 * default_run['probe_share']:.1f}% of run {default_run['run']} ({default_run['total_s']} s)")
    print(f"target <= {TARGET_RATIO}x floor met: {result['target_met']}; written to {args.output}")


if __name__ == "__main__":
    main()
