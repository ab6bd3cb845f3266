"""One DDP learner step (SFT) with 1 and 2 torch.distributed workers on a local Ray, on the CPU: wall time and the
share of it spent in the gradient all-reduce.

The step is :meth:`~prism_agents.learners.sft.SFTLearner.train_examples` on one fixed batch (``--rows`` rows of
``--length`` seeded random token ids, the loss on the last ``--action-tokens`` of each row), so one call is one
forward, backward (with DDP's all-reduce of the LoRA gradients) and AdamW step, run on the
:class:`~prism_agents.cluster.learner_group.LearnerGroup` workers the pipeline uses. Two of the three
layouts (:data:`LAYOUTS`) get the same 2 CPUs: 1 worker with 2 torch threads, or 2 workers of one thread each sharing
the batch's rows; the third is 1 worker of one thread. Time in
the all-reduce is measured by a DDP communication hook on every worker (from launching a bucket's all-reduce to its
completion, so it includes waiting for the slower worker); the step's wall time is the learner's own ``wall_s`` (the
slowest worker's), and the communication share that worker's largest all-reduce time over it.
Every figure is the median over ``--repeats`` steps after one warm-up step.

    python benchmarks/scaling_learner.py                       # embedded SmolLM2-135M-Instruct, LoRA rank 16
    python benchmarks/scaling_learner.py --model tiny          # the tests' tiny random-weight model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from prism_agents.cluster.learner_group import LearnerGroup, LearnerWorker
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.config.training import SFTConfig
from prism_agents.learners.parallel import DataParallel
from prism_agents.policies.prompts import TrainingExample

RESULTS = Path(__file__).parent / "results" / "scaling_learner.json"
LAYOUTS = ((1, 1), (1, 2), (2, 1))
"""(workers, CPUs and torch threads per worker) measured: one worker on one or both cores, two of one core each."""


@dataclass(frozen=True)
class TimedParallel(DataParallel):
    """:class:`DataParallel` whose DDP wrapper times every bucket's all-reduce into :attr:`seconds`."""

    seconds: list[float] = field(default_factory=list, compare=False)
    """Seconds from launch to completion of each all-reduce."""

    def wrap(self, model: torch.nn.Module, *extras: torch.nn.Module) -> torch.nn.Module:
        wrapped = super().wrap(model, *extras)
        if self.world > 1:
            wrapped.register_comm_hook(self.seconds, timed_allreduce)
        return wrapped


def timed_allreduce(seconds, bucket):  # unannotated: DDP checks annotations, which are strings here
    """DDP's default hook (all-reduce, then divide by the world size), its time appended to ``seconds``."""
    started = time.perf_counter()
    tensor = bucket.buffer().div_(dist.get_world_size())
    future = dist.all_reduce(tensor, async_op=True).get_future()

    def finished(done: torch.futures.Future) -> torch.Tensor:
        seconds.append(time.perf_counter() - started)
        return done.value()[0]

    return future.then(finished)


class TimedWorker(LearnerWorker):
    """A learner worker whose learners time their all-reduces, with a method running one step on fixed examples."""

    def __init__(self, rank: int, world: int, model: ModelConfig, lora: LoraConfig, threads: int) -> None:
        super().__init__(rank, world, model, lora, threads)
        self.parallel = TimedParallel(rank, world, self.parallel.device)

    def step(self, key: str, examples: list[TrainingExample]) -> dict[str, float]:
        """One SFT step on ``examples`` (one batch): its wall time and the time this worker spent in all-reduces."""
        self.parallel.seconds.clear()
        metrics = self.learners[key].train_examples(self.policy, examples)
        return {"wall_s": metrics["wall_s"], "comm_s": sum(self.parallel.seconds), "steps": metrics["steps"],
                "threads": torch.get_num_threads()}


def fixed_batch(vocab: int, rows: int, length: int, action_tokens: int) -> list[TrainingExample]:
    """``rows`` seeded random examples of ``length`` tokens, the loss on the last ``action_tokens`` of each."""
    rng = random.Random(0)
    mask = [0] * (length - action_tokens) + [1] * action_tokens
    return [TrainingExample([rng.randrange(vocab) for _ in range(length)], list(mask), f"row:{row}", None)
            for row in range(rows)]


def measure(workers: int, cpus: int, model: ModelConfig, lora: LoraConfig, examples, repeats: int) -> dict:
    """Median step wall time and all-reduce time of ``workers`` workers of ``cpus`` CPUs (torch threads) each."""
    cluster = ClusterConfig(backend="ray", learner_workers=workers, learner_cpus=cpus, actor_threads=cpus)
    batch_tokens = len(examples) * len(examples[0].input_ids)
    config = SFTConfig(epochs=1, batch_tokens=batch_tokens, learning_rate=1e-5, warmup_ratio=0.0, progress=False)
    started = time.perf_counter()
    with LearnerGroup(cluster, model, lora, worker=TimedWorker) as group:
        start_s = time.perf_counter() - started
        learner = group.learner("sft", config)
        rounds = [group._call_all("step", learner.key, examples) for _ in range(repeats + 1)][1:]
    assert all(r["steps"] == 1 for step in rounds for r in step), "the fixed batch must be one step"
    wall = [max(r["wall_s"] for r in step) for step in rounds]
    comm = [[r["comm_s"] for r in step] for step in rounds]
    return {
        "workers": workers,
        "torch_threads_per_worker": rounds[0][0]["threads"],
        "step_wall_s_median": statistics.median(wall),
        "step_wall_s_all": wall,
        "allreduce_s_median_per_worker": [statistics.median(c[rank] for c in comm) for rank in range(workers)],
        "communication_share_median": statistics.median(max(c) / w for c, w in zip(comm, wall)),
        "group_start_s": start_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model.name, or 'tiny' (the tests' model)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (the default run's)")
    parser.add_argument("--rows", type=int, default=4, help="rows of the fixed batch")
    parser.add_argument("--length", type=int, default=128, help="tokens per row")
    parser.add_argument("--action-tokens", type=int, default=32, help="loss tokens at the end of each row")
    parser.add_argument("--repeats", type=int, default=3, help="measured steps per layout, after one warm-up step")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    import ray
    from transformers import AutoConfig

    if args.model == "tiny":
        sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
        from tiny_model import build_tiny_model

        name = str(build_tiny_model(tempfile.mkdtemp()))
    else:
        name = args.model
    model = ModelConfig(name=name, device="cpu")
    lora = LoraConfig(rank=args.rank, alpha=2 * args.rank)
    from prism_agents.policies.model import resolve_model

    vocab = AutoConfig.from_pretrained(resolve_model(model)).vocab_size
    examples = fixed_batch(vocab, args.rows, args.length, args.action_tokens)
    ray.init(num_cpus=2, object_store_memory=128 * 1024 * 1024, include_dashboard=False,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    load_before = os.getloadavg()
    try:
        layouts = [measure(workers, cpus, model, lora, examples, args.repeats) for workers, cpus in LAYOUTS]
    finally:
        ray.shutdown()
    one_thread, one, two = layouts
    result = {
        "benchmark": "one DDP SFT step (forward, backward with the LoRA-gradient all-reduce, AdamW) on a fixed batch",
        "model": args.model,
        "lora_rank": args.rank,
        "batch": {"rows": args.rows, "tokens_per_row": args.length, "action_tokens_per_row": args.action_tokens},
        "ray_cpus": 2,
        "backend": "gloo (CPU), Ray actors on one machine",
        "repeats": args.repeats,
        "layouts": layouts,
        "speedup_2_workers_vs_1_worker_2_threads": one["step_wall_s_median"] / two["step_wall_s_median"],
        "speedup_2_workers_vs_1_worker_1_thread": one_thread["step_wall_s_median"] / two["step_wall_s_median"],
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "ray": ray.__version__},
        "load_average_1m_before_after": [load_before[0], os.getloadavg()[0]],
        "note": "the machine's 2 cores are shared with other work (see the load average); figures are medians of the "
                "repeats",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
