"""The generator contract: serve the base model or one LoRA adapter version, prompted with token ids.

Prompts are token-id lists: the pipeline renders them with the policy's
tokenizer and chat template, so the served prompt is exactly the trained one.
A :class:`Completion` carries the sampled token ids and, for each, its
log-probability under the model's own distribution (softmax of the raw logits:
no temperature, no top-p), which is what a learner recomputes on its side.

Sampling draws from a random stream: ``reseed(seed)`` restarts it, and the
n-th ``generate`` call after a reseed samples with seeds derived from ``seed``
and n alone, so what a run samples does not depend on what the engine served
before (another run sharing it, or an earlier attempt of the same run).

``score`` runs prompts teacher-forced (one prefill each, nothing sampled, the
random stream untouched): the served-adapter check compares its scores with
the training-side model's.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from transformers import AutoTokenizer

from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.policies.generators.check import CheckResult, check_served_adapter

FINISH_REASONS = ("stop", "length")


@dataclass
class Completion:
    """One generated continuation of one prompt."""

    text: str
    """The generated tokens decoded without special tokens."""
    token_ids: list[int]
    """Generated token ids, including the end-of-turn token when generation stopped on it."""
    logprobs: list[float]
    """Log-probability of each generated token under the model (raw logits, temperature 1)."""
    finish_reason: str
    """``stop`` (end-of-turn token) or ``length`` (``max_new_tokens`` reached)."""
    prompt_tokens: int
    """Number of prompt tokens."""


@dataclass
class PromptScores:
    """One prompt scored teacher-forced in one forward pass; row i is the prediction after its first i + 1 tokens."""

    token_logprobs: list[float]
    """Log-prob of each prompt token after the first, given the tokens before it (one fewer than the prompt)."""
    greedy_ids: list[int]
    """Most likely next token after each prefix, the whole prompt last (as many as the prompt's tokens)."""
    greedy_logprobs: list[float]
    """Log-prob of each of ``greedy_ids``."""


class TrainingSide(Protocol):
    """What the served-adapter check compares against: the training-side model and its tokenizer.

    :class:`prism_agents.policies.lora.Policy` satisfies it.
    """

    model: Any
    tokenizer: Any


class Generator(ABC):
    """Serves the base model or one LoRA adapter version; subclasses implement the engine."""

    def __init__(self, config: GeneratorConfig, base_model_path: str | Path) -> None:
        config.validate()
        config.sampling.validate()
        self.config = config
        self.base_model_path = Path(base_model_path)
        if not (self.base_model_path / "config.json").is_file():
            raise FileNotFoundError(
                f"generator: base model folder {str(self.base_model_path)!r} has no config.json "
                "(expected a Hugging Face checkpoint folder)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(self.base_model_path)
        self.adapter_version: int | None = None
        """Version of the adapter now served; None while the base model is served."""
        self.load_seconds: dict[str, float] = {}
        """Wall-clock seconds of the last :meth:`load_adapter`: ``serve`` (the switch), ``check`` (when it
        checked), and the parts of the switch an engine times itself (merged vLLM: ``merge``, ``reload``)."""
        self.reseed(config.seed)

    @abstractmethod
    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None) -> list[Completion]:
        """One completion per prompt (token ids), in order; ``sampling`` defaults to ``config.sampling``."""

    @abstractmethod
    def score(self, prompts: Sequence[Sequence[int]]) -> list[PromptScores]:
        """Teacher-forced scores of each prompt (token ids, at least one) under what is served now, in order;
        log-probs of the raw logits, as in :class:`Completion`."""

    @abstractmethod
    def _serve_adapter(self, path: Path, version: int) -> None:
        """Make the next ``generate`` and ``score`` calls use the adapter at ``path``."""

    @abstractmethod
    def _serve_base(self) -> None:
        """Make the next ``generate`` and ``score`` calls use the base model without adapter."""

    def load_adapter(
        self, path: str | Path, version: int, reference: TrainingSide | None = None
    ) -> CheckResult | None:
        """Serve the LoRA adapter saved at ``path`` as ``version`` from the next call on.

        With ``reference`` (the training-side model and tokenizer holding the
        same weights), the served adapter is checked at once and
        :class:`~prism_agents.policies.generators.check.AdapterMismatchError`
        is raised when it differs, so a stale adapter is never served silently.
        """
        path = adapter_folder(path)
        self.load_seconds = {}
        start = time.perf_counter()
        self._serve_adapter(path, version)
        self.adapter_version = version
        self.load_seconds["serve"] = time.perf_counter() - start
        if reference is None:
            return None
        start = time.perf_counter()
        result = self.check(reference)
        self.load_seconds["check"] = time.perf_counter() - start
        return result

    def use_base_model(self) -> None:
        """Serve the base model without adapter from the next call on."""
        self.load_seconds = {}
        self._serve_base()
        self.adapter_version = None

    def check(self, reference: TrainingSide) -> CheckResult:
        """Compare what is served now with ``reference`` on the configured probe prompt."""
        return check_served_adapter(
            self, reference.model, reference.tokenizer, prompt=self.config.check_prompt, tolerance=self.config.check_tolerance
        )

    def reseed(self, seed: int) -> None:
        """Restart sampling on the random stream of ``seed``: the calls that follow sample as they would
        right after the generator started with ``generator.seed`` = ``seed``."""
        self._stream_seed = seed
        self._calls = 0

    def _call_seed(self) -> int:
        """Seed of the next sampling call of the stream (count the call)."""
        self._calls += 1
        return derived_seed(self._stream_seed, self._calls)

    def close(self) -> None:
        """Free the engine's memory; the generator cannot be used afterwards."""

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _sampling(self, sampling: SamplingConfig | None) -> SamplingConfig:
        sampling = sampling or self.config.sampling
        sampling.validate()
        return sampling

    def _completion(self, prompt_tokens: int, token_ids: list[int], logprobs: list[float], stopped: bool) -> Completion:
        return Completion(
            text=self.tokenizer.decode(token_ids, skip_special_tokens=True),
            token_ids=token_ids,
            logprobs=logprobs,
            finish_reason="stop" if stopped else "length",
            prompt_tokens=prompt_tokens,
        )


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed determined by ``parts`` alone (the same in every process and Python version)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def adapter_folder(path: str | Path) -> Path:
    """``path`` as a peft adapter folder; raises FileNotFoundError naming what is missing."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a LoRA adapter folder (no adapter_config.json)")
    return path


def adapter_rank(path: Path) -> int:
    """The largest LoRA rank in an adapter folder (``r`` and any per-module ``rank_pattern``)."""
    config = json.loads((path / "adapter_config.json").read_text())
    return max([int(config.get("r", 0)), *map(int, (config.get("rank_pattern") or {}).values())])
