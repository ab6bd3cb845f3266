"""Generation throughput of vLLM vs HF transformers serving a LoRA adapter, and adapter swap cost.

One run measures, on the same prompts (chat-rendered ALFWorld-style text of
``--prompt-min`` to ``--prompt-max`` tokens, a fresh set per repeat so no
engine reuses a cached prompt from an earlier repeat):

* vLLM serving the adapter through its LoRA kernels (``vllm_lora``), vLLM serving
  the adapter merged into the weights (``vllm_merged``, the CPU default), vLLM on
  the base model (reference), HF + peft with the adapter: generated tokens/s and
  prompt tokens/s over whole ``generate`` calls of ``--batch-size`` prompts,
  greedy, exactly ``--new-tokens`` new tokens each;
* the same engines on conversations, the workload of the default run's rollouts (``prompt.history: full``):
  ``--batch-size`` episodes of ``--turns`` turns, each turn one ``generate`` call for all episodes, each
  episode's prompt its whole conversation so far, built by the real
  :class:`~prism_agents.policies.prompts.PromptBuilder` as a rollout builds it (the previous prompt, the
  engine's own ``--turn-tokens`` sampled tokens, then the next observation's user turn and the assistant
  header); engines with a prefix cache reuse the earlier turns, HF + peft prefills each prompt whole;
* the in-place swap of ``--versions`` successive adapter versions into the
  running engine, each checked with the served-adapter check: seconds per
  version and their median, split into the parts the generator times
  (``serve``, ``check``; for ``vllm_merged`` also ``merge``, the in-memory merge,
  and ``reload``, loading the merged projections into the engine; ``serve`` is
  ``merge`` + ``reload`` + resetting the prefix cache).

The adapter is a rank ``--rank`` LoRA on all projections of the policy
(:class:`prism_agents.policies.lora.Policy`) with random non-zero B matrices.
Results go to ``--output`` as JSON and are printed as a table.

    python benchmarks/generation.py                      # embedded SmolLM2-135M-Instruct
    python benchmarks/generation.py --model /path/to/hf/checkpoint --batch-size 32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.config.training import PromptConfig
from prism_agents.policies.generators import Generator, HFGenerator, VLLMGenerator
from prism_agents.policies.generators.check import probe_prompt_ids
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder, served_context
from prism_agents.types import Step

SENTENCES = [
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 4, a cabinet 3, a cabinet 2, "
    "a cabinet 1, a coffeemachine 1, a countertop 1, a diningtable 1, a drawer 2, a drawer 1, a fridge 1, "
    "a garbagecan 1, a microwave 1, a shelf 3, a shelf 2, a shelf 1, a sinkbasin 1, a stoveburner 4, a toaster 1.",
    "> go to countertop 1\nYou arrive at countertop 1. On the countertop 1, you see a apple 1, a bread 1, "
    "a butterknife 2, a dishsponge 1, a egg 2, a knife 1, a lettuce 1, a mug 2, a pan 1, and a spatula 1.",
    "> open fridge 1\nYou open the fridge 1. The fridge 1 is open. In it, you see a bowl 1, a cup 3, a egg 1, "
    "a plate 2, a potato 2, and a tomato 1.",
    "> take apple 1 from countertop 1\nYou pick up the apple 1 from the countertop 1.",
    "> go to sinkbasin 1\nYou arrive at sinkbasin 1. On the sinkbasin 1, you see a fork 1 and a spoon 2.",
    "> clean apple 1 with sinkbasin 1\nYou clean the apple 1 using the sinkbasin 1.",
    "> go to drawer 1\nYou arrive at drawer 1. The drawer 1 is closed.",
    "> examine shelf 2\nOn the shelf 2, you see a saltshaker 1, a peppershaker 3 and a vase 2.",
    "Admissible actions: go to cabinet 1, go to cabinet 2, go to countertop 1, go to drawer 1, go to fridge 1, "
    "go to microwave 1, inventory, look, open drawer 1, examine countertop 1, put apple 1 in/on countertop 1.",
]
TASK = "Your task is to: put a clean apple in fridge. Reply with exactly one action.\nRecent steps:\n"


def make_prompts(tokenizer, count: int, shortest: int, longest: int, seed: int) -> list[list[int]]:
    """``count`` chat prompts of whole game steps, at most a target length each; targets spread over [shortest, longest]."""
    rng = random.Random(seed)
    prompts = []
    for index in range(count):
        target = shortest + (longest - shortest) * index // max(1, count - 1)
        steps: list[str] = []
        while True:
            step = rng.choice(SENTENCES)
            if len(probe_prompt_ids(tokenizer, TASK + "\n".join(steps + [step]))) > target and steps:
                break
            steps.append(step)
        prompts.append(probe_prompt_ids(tokenizer, TASK + "\n".join(steps)))
    return prompts


def use_random_adapter(policy: Policy, folder: Path, seed: int) -> Path:
    """Give the policy's adapter random non-zero B matrices drawn from ``seed``; the adapter saved at
    ``folder / f"v{seed}"`` (written on first use)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
    path = folder / f"v{seed}"
    return path if path.exists() else policy.save_adapter(path)


def throughput(generator: Generator, prompt_sets: list[list[list[int]]], new_tokens: int) -> dict:
    """Generated and prompt tokens per second over the timed ``generate`` calls (one per prompt set)."""
    sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    generator.generate(prompt_sets[0][:2], SamplingConfig(max_new_tokens=4, temperature=0.0))  # warm-up
    seconds, generated, prompted = 0.0, 0, 0
    for prompts in prompt_sets:
        start = time.perf_counter()
        completions = generator.generate(prompts, sampling)
        seconds += time.perf_counter() - start
        generated += sum(len(c.token_ids) for c in completions)
        prompted += sum(c.prompt_tokens for c in completions)
    return {
        "seconds": round(seconds, 3),
        "generated_tokens": generated,
        "prompt_tokens": prompted,
        "generated_tokens_per_s": round(generated / seconds, 2),
        "prompt_tokens_per_s": round(prompted / seconds, 2),
    }


def conversation_throughput(
    generator: Generator, prompts: PromptBuilder, episodes: int, turns: int, turn_tokens: int, seed: int
) -> dict:
    """Generated tokens per second over ``turns`` ``generate`` calls, one per turn of ``episodes`` conversations
    (observations drawn from ``seed``; each completion exactly ``turn_tokens`` greedy tokens of the engine's own)."""
    rng = random.Random(seed)
    sampling = SamplingConfig(max_new_tokens=turn_tokens, temperature=0.0, ignore_eos=True)
    instruction = TASK.split(".")[0] + "."
    histories: list[list[Step]] = [[] for _ in range(episodes)]
    seconds, generated, prompted = 0.0, 0, 0
    for _ in range(turns):
        observations = [rng.choice(SENTENCES) for _ in range(episodes)]
        served = []
        for history, observation in zip(histories, observations):
            added, continues = prompts.next_prompt_ids(instruction, history, observation, [])
            served.append((added, continues, served_context(history) + added if continues else added))
        start = time.perf_counter()
        completions = generator.generate([ids for _, _, ids in served], sampling)
        seconds += time.perf_counter() - start
        for history, observation, (added, continues, ids), completion in zip(histories, observations, served, completions):
            history.append(Step(
                observation, completion.text, 0.0, completion_token_ids=completion.token_ids, prompt_tokens=len(ids),
                prompt_token_ids=added, continues_context=continues, raw_completion=completion.text,
            ))
            generated += len(completion.token_ids)
            prompted += len(ids)
    return {
        "seconds": round(seconds, 3),
        "generated_tokens": generated,
        "prompt_tokens_given": prompted,
        "generated_tokens_per_s": round(generated / seconds, 2),
    }


def adapter_swaps(generator: Generator, policy: Policy, folder: Path, versions: range) -> dict:
    """Load each of ``versions`` (a random adapter each, the policy holding it) into the running engine and pass
    the check: seconds per version with the generator's own split, and the medians."""
    swaps = []
    for version in versions:
        path = use_random_adapter(policy, folder, seed=version)
        start = time.perf_counter()
        generator.load_adapter(path, version, reference=policy)
        seconds = time.perf_counter() - start
        swaps.append({"version": version, "seconds": seconds, **generator.load_seconds})
    medians = {f"median_{part}": statistics.median(swap[part] for swap in swaps) for part in swaps[0] if part != "version"}
    rounded = [{part: round(value, 3) for part, value in swap.items()} for swap in swaps]
    return {"versions": rounded, **{part: round(value, 3) for part, value in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model.name: embedded name or checkpoint folder")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prompt-min", type=int, default=300)
    parser.add_argument("--prompt-max", type=int, default=500)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed generate calls per engine")
    parser.add_argument("--turns", type=int, default=10, help="turns of each conversation")
    parser.add_argument("--turn-tokens", type=int, default=8, help="tokens each conversation turn generates")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank of the benchmark adapter")
    parser.add_argument("--versions", type=int, default=5, help="successive adapter versions swapped into each engine")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--vllm-multiprocessing", action="store_true", help="run vLLM's engine core in its own process")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/generation.json"))
    args = parser.parse_args()

    policy = Policy.load(ModelConfig(name=args.model, dtype=args.dtype, device="cpu"), LoraConfig(rank=args.rank))
    config = GeneratorConfig(
        dtype=args.dtype,
        hf_batch_size=args.batch_size,
        max_lora_rank=args.rank,
        max_model_len=max(args.prompt_max + args.new_tokens, 300 + args.turns * (120 + args.turn_tokens)) + 64,
        vllm_in_process=not args.vllm_multiprocessing,
    )
    conversation_prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="full", max_admissible_actions=0), "alfworld")
    prompt_sets = [
        make_prompts(policy.tokenizer, args.batch_size, args.prompt_min, args.prompt_max, seed)
        for seed in range(args.repeats)
    ]
    results: dict = {
        "model": policy.base_model_path,
        "device": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
    }
    with tempfile.TemporaryDirectory() as folder:
        first = use_random_adapter(policy, Path(folder), seed=1)
        runs, conversations, swaps = {}, {}, {}
        engines = (("hf_lora", HFGenerator, "lora"), ("vllm_lora", VLLMGenerator, "lora"), ("vllm_merged", VLLMGenerator, "merged"))
        for name, factory, serving in engines:
            start = time.perf_counter()
            generator = factory(dataclasses.replace(config, adapter_serving=serving), policy.base_model_path)
            results[f"{name}_start_seconds"] = round(time.perf_counter() - start, 3)
            with generator:
                generator.load_adapter(first, 1)
                runs[name] = throughput(generator, prompt_sets, args.new_tokens)
                conversations[name] = conversation_throughput(
                    generator, conversation_prompts, args.batch_size, args.turns, args.turn_tokens, seed=0
                )
                if name == "vllm_lora":
                    generator.use_base_model()
                    runs["vllm_base"] = throughput(generator, prompt_sets, args.new_tokens)
                    conversations["vllm_base"] = conversation_throughput(
                        generator, conversation_prompts, args.batch_size, args.turns, args.turn_tokens, seed=0
                    )
                swaps[name] = adapter_swaps(generator, policy, Path(folder), range(2, 2 + args.versions))
        results["runs"] = runs
        results["conversations"] = conversations
        results["adapter_swaps"] = swaps
    results["ratios_to_hf_lora"] = ratios_to_hf(runs)
    results["conversation_ratios_to_hf_lora"] = ratios_to_hf(conversations)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"fresh prompts of {args.prompt_min}-{args.prompt_max} tokens, {args.new_tokens} new tokens each; "
          f"conversations of {args.turns} turns, {args.turn_tokens} new tokens a turn; batch {args.batch_size}")
    print(f"{'engine':<12}{'gen tok/s':>12}{'prompt tok/s':>14}{'x HF+LoRA':>11}{'conv. gen tok/s':>17}{'x HF+LoRA':>11}")
    for name, run in runs.items():
        ratio, conversation = results["ratios_to_hf_lora"][name], conversations[name]
        print(f"{name:<12}{run['generated_tokens_per_s']:>12.1f}{run['prompt_tokens_per_s']:>14.1f}{ratio:>11.2f}"
              f"{conversation['generated_tokens_per_s']:>17.1f}{results['conversation_ratios_to_hf_lora'][name]:>11.2f}")
    for name, _, _ in engines:
        each = ", ".join(f"{swap['seconds']:.3f}" for swap in swaps[name]["versions"])
        parts = ", ".join(f"{key.removeprefix('median_')} {value}" for key, value in swaps[name].items() if key != "versions")
        print(f"{name}: engine start {results[f'{name}_start_seconds']} s; load + check of each version {each} s; medians: {parts}")
    print(f"written to {args.output}")


def ratios_to_hf(runs: dict) -> dict:
    """Each engine's generated tokens/s over HF + peft's (``hf_lora``) in the same workload."""
    return {name: round(run["generated_tokens_per_s"] / runs["hf_lora"]["generated_tokens_per_s"], 2) for name, run in runs.items()}


if __name__ == "__main__":
    main()
