"""The served-adapter check: does the generator serve the weights the training side holds?

A fixed probe (the check prompt's own tokens: no chat template, since the check
compares weights and every probe token costs a forward position on both sides)
is scored teacher-forced on both sides: by the generator in one prefill
(:meth:`~prism_agents.policies.generators.base.Generator.score`) and by the
training-side model in one forward pass. At every probe position (after each
prefix of the probe tokens, the whole probe last) the served greedy
choice must be the training side's (a tie within ``tolerance`` counts as
equal), and the served log-probs of the next probe token and of the greedy choice
must be within ``tolerance`` of the training side's. Otherwise
:class:`AdapterMismatchError` says which version, where, and which tokens and
values differ. The training side's half (:class:`ProbeReference`) is computed
apart from the comparison, so a generator of several engine replicas runs it once
and compares every replica's scores with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from prism_agents.policies.generators.base import Generator, PromptScores


class AdapterMismatchError(RuntimeError):
    """The generator's scores differ from the training-side model's on the probe."""


@dataclass
class CheckResult:
    """A passed check: how many probe positions were compared and how close the two sides were."""

    version: int | None
    """Adapter version that was checked (None: the base model)."""
    positions: int
    """Probe positions compared: one after each prefix of the probe tokens (as many as the probe has tokens)."""
    max_logprob_diff: float
    """Largest |served - training-side| log-prob over the compared tokens (next probe token and greedy choice)."""


def check_probe_ids(tokenizer: Any, message: str) -> list[int]:
    """The token ids the served-adapter check scores: ``message`` tokenized as plain text."""
    return tokenizer(message, add_special_tokens=False)["input_ids"]


def probe_prompt_ids(tokenizer: Any, message: str) -> list[int]:
    """Token ids of ``message`` as a user turn with the chat template (plain text without one)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(message)["input_ids"]


@torch.no_grad()
def next_token_logprobs(model: torch.nn.Module, token_ids: list[int]) -> torch.Tensor:
    """Log-softmax over the vocabulary after each prefix of ``token_ids``, in one forward pass
    (float32, shape [len(token_ids), vocab]: row i is the distribution of the token after ``token_ids[: i + 1]``).

    The model runs in eval mode (no dropout) for this pass and gets its mode back afterwards; a model already in
    eval mode (as learners leave it) is not switched, since walking its ~2,500 modules twice costs 0.02 s here.
    """
    was_training = model.training
    if was_training:
        model.eval()
    try:
        device = next(model.parameters()).device
        logits = model(input_ids=torch.tensor([token_ids], device=device)).logits[0]
    finally:
        if was_training:
            model.train()
    return torch.log_softmax(logits.float(), dim=-1).cpu()


def check_served_adapter(
    generator: Generator, model: torch.nn.Module, tokenizer: Any, *, prompt: str, tolerance: float
) -> CheckResult:
    """Compare the generator with ``model`` (the training side, its adapter active) on the probe ``prompt``.

    Raises :class:`AdapterMismatchError` at the first position where the greedy
    choices differ or a log-prob differs by more than ``tolerance``.
    """
    reference = ProbeReference.of(model, tokenizer, prompt)
    served = generator.score([reference.probe])[0]
    version = generator.adapter_version
    return reference.compare(served, version, served_by(type(generator).__name__, version), tolerance)


def served_by(engine: str, version: int | None) -> str:
    """What a check's messages call the checked side: ``engine`` and the version it serves."""
    return f"{engine} serving {'the base model' if version is None else f'adapter version {version}'}"


@dataclass
class ProbeReference:
    """The training side's half of the check: computed once, compared with the scores of any number of engines."""

    probe: list[int]
    """Token ids of the probe (the check prompt tokenized as plain text)."""
    logprobs: torch.Tensor
    """The training-side model's log-softmax after each prefix of ``probe`` ([len(probe), vocab], float32)."""
    tokenizer: Any
    """Tokenizer that names tokens in mismatch messages."""

    @classmethod
    def of(cls, model: torch.nn.Module, tokenizer: Any, prompt: str) -> ProbeReference:
        """``model``'s half of the check on the probe ``prompt`` (one forward pass)."""
        probe = check_probe_ids(tokenizer, prompt)
        return cls(probe, next_token_logprobs(model, probe), tokenizer)

    def compare(self, served: PromptScores, version: int | None, where: str, tolerance: float) -> CheckResult:
        """Check ``served`` (the probe scored by the engine ``where`` names, serving ``version``) against this
        reference; raises :class:`AdapterMismatchError` naming ``where`` on a mismatch."""
        probe, reference = self.probe, self.logprobs
        max_diff = 0.0
        for row, (greedy, greedy_logprob) in enumerate(zip(served.greedy_ids, served.greedy_logprobs, strict=True)):
            after = f"after the first {row + 1} of the {len(probe)} probe tokens"
            expected = int(reference[row].argmax())
            gap = float(reference[row, expected] - reference[row, greedy])
            if gap > tolerance:
                raise AdapterMismatchError(
                    f"{where} disagrees with the training-side model {after}: served greedy token "
                    f"{_named(self.tokenizer, greedy)} (log-prob {greedy_logprob:.5f}), training side's greedy token "
                    f"{_named(self.tokenizer, expected)} ({gap:.4f} nats more likely there); the served adapter is "
                    "stale or was saved from different weights"
                )
            compared = [(greedy, greedy_logprob)]
            if row + 1 < len(probe):
                compared.append((probe[row + 1], served.token_logprobs[row]))
            for token, served_logprob in compared:
                expected_logprob = float(reference[row, token])
                diff = abs(expected_logprob - served_logprob)
                if diff > tolerance:
                    raise AdapterMismatchError(
                        f"{where}: log-prob of token {_named(self.tokenizer, token)} {after} is {served_logprob:.5f} "
                        f"served vs {expected_logprob:.5f} on the training side (difference {diff:.5f} > tolerance "
                        f"{tolerance}); the served adapter is stale, or raise generator.check_tolerance for "
                        "low-precision dtypes"
                    )
                max_diff = max(max_diff, diff)
        return CheckResult(version=version, positions=len(served.greedy_ids), max_logprob_diff=max_diff)


def _named(tokenizer: Any, token: int) -> str:
    """A token id with its text, for messages."""
    return f"{token} ({tokenizer.decode([token])!r})"
