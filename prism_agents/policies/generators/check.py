"""The served-adapter check: does the generator serve the weights the training side holds?

The generator decodes a fixed probe prompt greedily; the training-side model
then scores the same tokens in one teacher-forced forward pass. At every
position the served token must be the training side's greedy choice (a tie
within ``tolerance`` counts as equal) and its served log-prob must be within
``tolerance`` of the training side's. Otherwise :class:`AdapterMismatchError`
says which version, where, and which two tokens differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from prism_agents.config.generation import SamplingConfig

if TYPE_CHECKING:
    from prism_agents.policies.generators.base import Generator


class AdapterMismatchError(RuntimeError):
    """The generator's output differs from the training-side model's on the probe prompt."""


@dataclass
class CheckResult:
    """A passed check: the probe tokens and how close the two sides were."""

    version: int | None
    """Adapter version that was checked (None: the base model)."""
    token_ids: list[int]
    """Greedy probe tokens both sides agree on."""
    max_logprob_diff: float
    """Largest |served - training-side| log-prob over the probe tokens."""


def probe_prompt_ids(tokenizer: Any, message: str) -> list[int]:
    """Token ids of ``message`` as a user turn with the chat template (plain text without one)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(message)["input_ids"]


@torch.no_grad()
def token_logprobs(model: torch.nn.Module, prompt_ids: list[int], token_ids: list[int]) -> torch.Tensor:
    """Log-softmax over the vocabulary at each of ``token_ids``'s positions (float32, shape [n, vocab]).

    The model runs in eval mode (no dropout) for this pass and gets its mode back afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        ids = torch.tensor([prompt_ids + token_ids], device=device)
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
    finally:
        model.train(was_training)
    return torch.log_softmax(logits.float(), dim=-1).cpu()


def check_served_adapter(
    generator: Generator,
    model: torch.nn.Module,
    tokenizer: Any,
    *,
    prompt: str,
    new_tokens: int,
    tolerance: float,
) -> CheckResult:
    """Compare the generator with ``model`` (the training side, its adapter active) on ``prompt``.

    Raises :class:`AdapterMismatchError` at the first position where the
    greedy tokens differ or the log-probs are further apart than ``tolerance``.
    """
    version = generator.adapter_version
    served_as = "the base model" if version is None else f"adapter version {version}"
    prompt_ids = probe_prompt_ids(tokenizer, prompt)
    probe = SamplingConfig(max_new_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    served = generator.generate([prompt_ids], probe)[0]
    reference = token_logprobs(model, prompt_ids, served.token_ids)
    max_diff = 0.0
    for position, (token, served_logprob) in enumerate(zip(served.token_ids, served.logprobs)):
        expected = int(reference[position].argmax())
        gap = float(reference[position, expected] - reference[position, token])
        if gap > tolerance:
            raise AdapterMismatchError(
                f"{type(generator).__name__} serving {served_as} disagrees with the training-side model on the "
                f"probe prompt at generated position {position}: served token {token} "
                f"({tokenizer.decode([token])!r}), training side's greedy token {expected} "
                f"({tokenizer.decode([expected])!r}, {gap:.4f} nats more likely); the served adapter is stale "
                "or was saved from different weights"
            )
        diff = abs(float(reference[position, token]) - served_logprob)
        if diff > tolerance:
            raise AdapterMismatchError(
                f"{type(generator).__name__} serving {served_as}: log-prob of probe token {token} "
                f"({tokenizer.decode([token])!r}) at generated position {position} is {served_logprob:.5f} served "
                f"vs {float(reference[position, token]):.5f} on the training side (difference {diff:.5f} > "
                f"tolerance {tolerance}); the served adapter is stale, or raise generator.check_tolerance "
                "for low-precision dtypes"
            )
        max_diff = max(max_diff, diff)
    return CheckResult(version=version, token_ids=served.token_ids, max_logprob_diff=max_diff)
