"""Test helpers: a tiny random-weight Llama checkpoint and a short ALFWorld-like trajectory.

``build_tiny_model(folder)`` writes a complete Hugging Face checkpoint (config,
safetensors weights, generation config, fast tokenizer with a ChatML chat
template) that transformers, peft and vLLM can all load. The tokenizer is a
byte-level BPE trained in a fraction of a second on a small built-in corpus of
household-game text, so every string encodes (unknown words fall back to bytes).
Weights come from a fixed seed: the same call always gives the same model.
``sample_trajectory()`` is a hand-written four-step expert episode in ALFWorld's wording;
``as_served(episode, prompts)`` records it as if a policy had played it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from prism_agents.config.model import ModelConfig
from prism_agents.policies.prompts import served_context
from prism_agents.types import Step, Task, Trajectory

PAD_TOKEN = "<|endoftext|>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_CORPUS = [
    "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a cabinet 2, "
    "a countertop 1, a desk 1, a drawer 1, a fridge 1, a garbagecan 1, a microwave 1, a shelf 1, "
    "a sinkbasin 1, a stoveburner 1, a toaster 1.",
    "Your task is to: put a clean lettuce in diningtable. Your task is to: heat some egg and put it in "
    "garbagecan. Your task is to: look at alarmclock under the desklamp.",
    "go to desk 1. open drawer 1. close fridge 1. take pen 1 from desk 1. put apple 1 in/on countertop 1. "
    "clean lettuce 1 with sinkbasin 1. heat egg 1 with microwave 1. cool potato 1 with fridge 1. "
    "use desklamp 1. examine shelf 1. look. inventory.",
    "You arrive at desk 1. On the desk 1, you see a pen 1, a book 2 and a keychain 3. Nothing happens. "
    "You open the drawer 1. The drawer 1 is open. In it, you see nothing. You pick up the pen 1.",
    "Task: Observation: Actions: Admissible actions: Recent steps: Reply with one action. system user assistant",
]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread within the block.

    A tiny model's operations are too small to split; on a busy machine the idle
    threads of a second one spin at every barrier and slow tests down many times.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (about 600 tokens) with ChatML special tokens and chat template."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=[PAD_TOKEN, TURN_START, TURN_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=TURN_START,
        eos_token=TURN_END,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
    )


def build_tiny_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Write the tiny checkpoint into ``folder/tiny-llama`` (reused if already there) and return its path.

    Shape: 2 layers, hidden size 128, 2 attention heads of size 64, 1 key/value
    head, tied embeddings, float32 weights, context 2048. Weights are drawn with
    std 0.1 (not the usual 0.02) so that logits through the frozen tied embedding
    can grow large enough for an adapter to fit a few examples.
    """
    path = Path(folder) / "tiny-llama"
    if (path / "model.safetensors").is_file():
        return path
    tokenizer = build_tokenizer()
    end_id = tokenizer.convert_tokens_to_ids(TURN_END)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        initializer_range=0.1,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(TURN_START),
        eos_token_id=end_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=end_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=config.bos_token_id
    )
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path, safe_serialization=True)
    return path


def sample_trajectory(trajectory_id: str = "expert:sample") -> Trajectory:
    """A won four-step expert episode: find a pen on the desk and put it in the drawer."""
    room = "You are in the middle of a room. Looking quickly around you, you see a desk 1, a drawer 1, and a shelf 1."
    steps = [
        Step(room, "go to desk 1", 0.0, ["go to desk 1", "go to drawer 1", "go to shelf 1", "inventory", "look"]),
        Step(
            "You arrive at desk 1. On the desk 1, you see a pen 1, and a book 2.",
            "take pen 1 from desk 1",
            0.0,
            ["examine desk 1", "go to drawer 1", "go to shelf 1", "take book 2 from desk 1", "take pen 1 from desk 1"],
        ),
        Step(
            "You pick up the pen 1 from the desk 1.",
            "go to drawer 1",
            0.0,
            ["go to drawer 1", "go to shelf 1", "inventory", "look", "put pen 1 in/on desk 1"],
        ),
        Step(
            "You arrive at drawer 1. The drawer 1 is open. In it, you see nothing.",
            "put pen 1 in/on drawer 1",
            1.0,
            ["close drawer 1", "go to desk 1", "inventory", "look", "put pen 1 in/on drawer 1"],
        ),
    ]
    return Trajectory(
        trajectory_id=trajectory_id,
        task=Task("alfworld", "train", 0, "pick_and_place_simple-Pen-None-Drawer-1/trial_0", "pick"),
        instruction="Your task is to: put a pen in drawer.",
        initial_observation=f"{room}\n\nYour task is to: put a pen in drawer.",
        steps=steps,
        won=True,
        score=1.0,
        source="expert:handcoded",
    )


def as_served(episode: Trajectory, prompts, completions: list[list[int]] | None = None, logprob: float = -0.5) -> Trajectory:
    """``episode`` as the rollout records a policy's play: every step's served tokens (its action's tokens and
    the end-of-turn token, or ``completions[step]``), log-probs ``logprob`` and the prompt tokens it added."""
    eos = prompts.tokenizer.convert_tokens_to_ids(prompts.tokenizer.eos_token)
    steps: list[Step] = []
    for index, step in enumerate(episode.steps):
        added, continues = prompts.next_prompt_ids(episode.instruction, steps, step.observation, step.admissible_actions)
        served = served_context(steps) + added if continues else added
        tokens = prompts.tokenizer(step.action, add_special_tokens=False).input_ids + [eos]
        tokens = tokens if completions is None else completions[index]
        steps.append(dataclasses.replace(
            step, completion_token_ids=tokens, completion_logprobs=[logprob] * len(tokens), prompt_tokens=len(served),
            prompt_token_ids=added, continues_context=continues, raw_completion=step.action,
        ))
    return dataclasses.replace(episode, steps=steps)


@pytest.fixture(scope="module")
def tiny_model_threads():
    """Module fixture: the tiny model runs on one torch thread (see :func:`one_torch_thread`)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def model_config(tmp_path_factory, tiny_model_threads):
    """Module fixture: a ModelConfig naming a freshly built tiny checkpoint, on the CPU."""
    return ModelConfig(name=str(build_tiny_model(tmp_path_factory.mktemp("tiny"))), device="cpu")


def outcome_episodes(prompts, outcomes: list[bool], logprob: float = -0.5) -> list[Trajectory]:
    """Served episodes of the sample task, one per outcome (won: reward 1 on the last step; lost: 0), each with its
    own goal; episode ``n`` has the sampled log-prob ``logprob - 0.1 * n`` on every completion token."""
    episodes = []
    for number, won in enumerate(outcomes):
        episode = sample_trajectory(f"policy:{number}")
        episode.instruction = f"Your task is to: put pen {number} in drawer {number}."
        episode.won, episode.score = won, float(won)
        episode.steps[-1].reward = float(won)
        episodes.append(as_served(episode, prompts, logprob=logprob - 0.1 * number))
    return episodes
