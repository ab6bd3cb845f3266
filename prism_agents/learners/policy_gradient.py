"""The RL update GRPO and PPO share: step samples, advantages from a pluggable estimator, clipped-ratio epochs.

One call of :meth:`PolicyGradientLearner.train` is one iteration's update, read top to bottom:

1. the served tokens become samples (:func:`~prism_agents.learners.rl_samples.rl_samples`): with
   ``rl.sequences: episode`` one per context (with full history, one per episode), loss on every sampled
   completion token; with ``step`` one per step;
2. the learner's :class:`AdvantageEstimator` gives an advantage per episode and step (GRPO / GiGPO: group
   advantages, :class:`~prism_agents.learners.grpo.GroupAdvantages`; PPO: GAE on a value head,
   :class:`~prism_agents.learners.ppo.ValueCritic`); with ``rl.reward.invalid_action_penalty_at: advantage``
   an invalid step's advantage then loses the penalty
   (:func:`~prism_agents.learners.rl_samples.penalised_advantages`);
3. for ``rl.epochs`` passes, batches of similar length under ``rl.batch_tokens`` (the token kernel's
   :func:`~prism_agents.learners.tokens.length_batches`, at most 10 % padding): the clipped policy-ratio
   loss, each completion token with its own step's advantage, against the sampling policy's log-probs (dual
   clip ``rl.clip_ratio_c``), + ``rl.kl_coef`` x the k3 KL
   to the base model (adapter disabled, clamped per token at ``rl.kl_clamp``) when positive, + the estimator's
   own loss (PPO's value loss); one AdamW step per batch over the adapter and the estimator's parameters.
   The optimizer and the estimator's parameters persist across iterations; :meth:`save_state` keeps both.

A sample that can change nothing (advantage exactly 0 at every step, ``rl.kl_coef`` 0, an estimator without a loss) is
not run through the model. With ``rl.loss_denominator: all_tokens`` its tokens still count in its batch's
token mean, so leaving it out changes no gradient; with ``trained_tokens`` it is left out before batching.

Under data parallelism (:attr:`PolicyGradientLearner.parallel`, set by a distributed learner worker) every worker
computes the same samples, advantages and batches, runs its share of each batch's rows through DDP (the adapter and
the estimator's modules) with the whole batch's token and decision counts as denominators, and reports the
batch's metrics (:mod:`~prism_agents.learners.parallel`).
"""

from __future__ import annotations

import io
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from prism_agents.config.rl import RLConfig
from prism_agents.io import write_bytes_atomic
from prism_agents.learners.base import Learner, StepCallback
from prism_agents.learners.losses import clipped_policy_loss, entropy_from_logits, kl_penalty
from prism_agents.learners.parallel import LOCAL, DataParallel
from prism_agents.learners.rl_samples import RLSample, penalised_advantages, rl_samples
from prism_agents.learners.tokens import action_token_logits, collate, length_batches
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.types import Trajectory


@dataclass(frozen=True)
class Estimate:
    """An estimator's answer for one iteration: what the policy loss needs, and what the estimator's own loss needs."""

    advantages: list[list[float]]
    """``advantages[episode][step]``, before the invalid-action penalty of ``advantage`` placement."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The estimator's own metrics, added to the iteration's (PPO: value_mean, explained_variance)."""


class AdvantageEstimator(ABC):
    """Where a policy-gradient learner's advantages come from. A critic adds parameters (trained by the same
    optimizer), a loss on the backbone's hidden states, and state to save; the defaults have none."""

    has_loss: ClassVar[bool] = False
    """True when :meth:`loss` adds a term: every sample is then trained, and the step reads hidden states."""

    @abstractmethod
    def estimate(
        self, policy: Policy, episodes: Sequence[Trajectory], samples: Sequence[RLSample], prompts: PromptBuilder
    ) -> Estimate:
        """Advantages of the iteration's ``episodes`` (their ``samples`` from :func:`rl_samples`, in order)."""

    def parameter_groups(self, policy: Policy) -> list[dict[str, Any]]:
        """AdamW parameter groups of the estimator's own parameters (none by default)."""
        return []

    def modules(self, policy: Policy) -> list[torch.nn.Module]:
        """The modules holding :meth:`parameter_groups`' parameters (DDP averages their gradients; none by default)."""
        return []

    def loss(
        self, estimate: Estimate, states: torch.Tensor, batch: Sequence[RLSample], decisions: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The estimator's weighted loss on ``batch`` (``states``: the backbone's last hidden states), a sum over its
        decisions divided by ``decisions`` (the whole batch's, when ``batch`` is a worker's share of it), and its
        named values for the step metrics; called only when :attr:`has_loss`."""
        raise NotImplementedError(f"{type(self).__name__} sets has_loss but defines no loss()")

    def state_dict(self) -> dict[str, Any]:
        """What the estimator keeps across iterations, saved beside the optimizer (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], path: Path, policy: Policy) -> None:
        """Restore :meth:`state_dict`'s entries from ``state`` (read from ``path``), for ``policy``."""


class PolicyGradientLearner(Learner):
    """The shared RL loop (see the module docstring); a learner is this loop plus its advantage estimator."""

    config_class = RLConfig
    parallel: DataParallel = LOCAL
    """This learner's place among data-parallel workers (one process by default)."""

    def __init__(self, config: RLConfig, estimator: AdvantageEstimator) -> None:
        super().__init__(config)
        self.estimator = estimator
        self._optimizer: torch.optim.Optimizer | None = None
        self._trained: tuple[torch.nn.Module, torch.nn.Module] | None = None
        self._rng = random.Random(config.seed)

    def train(
        self,
        policy: Policy,
        data: Sequence[Trajectory],
        *,
        prompts: PromptBuilder,
        on_step: StepCallback | None = None,
    ) -> dict[str, float]:
        """Update the adapter (and the estimator's parameters) on one iteration's episodes ``data``.

        Returned: steps, samples (trained), tokens_trained, policy_loss, kl (to the base model, k3; 0 when
        ``kl_coef`` is 0), approx_kl (to the sampling policy), clip_fraction, grad_norm, entropy (action-token
        means over the iteration; absent when nothing was trained), advantage_abs_mean, wall_s, the
        estimator's loss values (PPO: value_loss) and its metrics, padding_share (of the padded tokens run).
        Step metrics add action_tokens and logprob_gap_max: the largest |learner - generator| log-prob of a
        completion token in the batch, before the step (at the iteration's first step, how far the trained
        model is from the served one: within ``generator.check_tolerance`` when they agree).
        """
        samples = rl_samples(data, self.config.sequences)
        if too_long := [s for s in samples if len(s.input_ids) > policy.max_seq_len]:
            raise ValueError(  # the rollout ends an episode before its context outgrows model.max_seq_len
                f"{too_long[0].trajectory_id}: an RL sequence of {len(too_long[0].input_ids)} tokens exceeds "
                f"model.max_seq_len={policy.max_seq_len}; it was played with a longer context than the learner's"
            )
        estimate = self.estimator.estimate(policy, data, samples, prompts)
        advantages = penalised_advantages(estimate.advantages, data, self.config.reward)
        return self._optimise(policy, samples, advantages, estimate, on_step) | estimate.metrics

    def _optimise(
        self,
        policy: Policy,
        samples: Sequence[RLSample],
        advantages: list[list[float]],
        estimate: Estimate,
        on_step: StepCallback | None,
    ) -> dict[str, float]:
        config = self.config
        samples = [s for s in samples if s.old_logprobs]  # a step that sampled no token has nothing to train

        def trains(sample: RLSample) -> bool:
            row = advantages[sample.episode]
            return self.estimator.has_loss or config.kl_coef > 0 or any(row[step] != 0.0 for step, _ in sample.decisions)

        if config.loss_denominator == "trained_tokens":
            samples = [s for s in samples if trains(s)]
        trained = sum(map(trains, samples))
        if not trained:  # no step, no token or every group tied: no update (entropy is not measured then)
            zeros = dict.fromkeys(("policy_loss", "kl", "approx_kl", "clip_fraction", "grad_norm"), 0.0)
            nothing = {"steps": 0, "samples": 0, "tokens_trained": 0, "advantage_abs_mean": 0.0, "padding_share": 0.0}
            return zeros | nothing | {"wall_s": 0.0}
        optimizer = self._optimizer_for(policy)
        lengths = [len(sample.input_ids) for sample in samples]
        totals: dict[str, float] = {}
        steps = tokens = padded = 0
        action_tokens = 0.0
        start = time.perf_counter()
        policy.model.train()
        try:
            for _ in range(config.epochs):
                for batch in length_batches(lengths, config.batch_tokens, self._rng):
                    chosen = [samples[index] for index in batch]
                    token_count = sum(len(sample.old_logprobs) for sample in chosen)
                    chosen = [sample for sample in chosen if trains(sample)]
                    if not chosen:
                        continue
                    values = self._step(policy, optimizer, chosen, advantages, estimate, token_count)
                    steps += 1
                    tokens += sum(len(sample.input_ids) for sample in chosen)
                    padded += len(chosen) * max(len(sample.input_ids) for sample in chosen)
                    weight = values["action_tokens"]
                    action_tokens += weight
                    for key, value in values.items():
                        if key not in ("action_tokens", "logprob_gap_max"):
                            totals[key] = totals.get(key, 0.0) + value * weight
                    if on_step is not None:
                        on_step({"step": steps, **values})
        finally:
            policy.model.eval()
        means = {key: total / action_tokens for key, total in totals.items()}
        flat = [abs(a) for episode in advantages for a in episode]
        return means | {
            "steps": steps,
            "samples": trained,
            "tokens_trained": tokens,
            "advantage_abs_mean": sum(flat) / len(flat),
            "padding_share": 1.0 - tokens / padded if padded else 0.0,
            "wall_s": time.perf_counter() - start,
        }

    def save_state(self, path: Path) -> None:
        """Write the optimizer state and the estimator's (PPO: the value head) to ``path``, atomically; nothing
        before the first update."""
        if self._optimizer is not None:
            buffer = io.BytesIO()
            torch.save({"optimizer": self._optimizer.state_dict(), **self.estimator.state_dict()}, buffer)
            write_bytes_atomic(path, buffer.getvalue())

    def load_state(self, path: Path, policy: Policy) -> None:
        """Restore what :meth:`save_state` wrote, for ``policy`` (whose adapter was loaded from the same iteration)."""
        state = torch.load(path, map_location=policy.device, weights_only=True)
        self.estimator.load_state_dict(state, path, policy)
        self._optimizer_for(policy).load_state_dict(state["optimizer"])

    def _optimizer_for(self, policy: Policy) -> torch.optim.Optimizer:
        if self._optimizer is None:
            groups = [{"params": policy.trainable_parameters(), "lr": self.config.learning_rate}]
            self._optimizer = torch.optim.AdamW(groups + self.estimator.parameter_groups(policy), weight_decay=0.0)
        return self._optimizer

    def _model_for(self, policy: Policy) -> torch.nn.Module:
        """``policy.model`` as the update calls it: wrapped once by :attr:`parallel` (DDP over the adapter and the
        estimator's modules) when there are several workers."""
        if self._trained is None or self._trained[0] is not policy.model:
            self._trained = (policy.model, self.parallel.wrap(policy.model, *self.estimator.modules(policy)))
        return self._trained[1]

    def _step(
        self,
        policy: Policy,
        optimizer: torch.optim.Optimizer,
        batch: list[RLSample],
        advantages: list[list[float]],
        estimate: Estimate,
        token_count: int,
    ) -> dict[str, float]:
        """One optimizer step on ``batch`` (its losses divided by ``token_count`` action tokens under
        ``all_tokens``); its token-mean statistics and its action-token count."""
        loss, values = self.batch_loss(policy, batch, advantages, estimate, token_count)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trained = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trained, self.config.grad_clip or math.inf))
        optimizer.step()
        return values | {"grad_norm": grad_norm}

    def batch_loss(
        self,
        policy: Policy,
        batch: Sequence[RLSample],
        advantages: Sequence[Sequence[float]],
        estimate: Estimate,
        token_count: int,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of ``batch`` (policy + KL + the estimator's) and its statistics, before any optimizer step;
        ``advantages[episode][step]`` gives each completion token its step's advantage. Under data parallelism the
        loss is this worker's share's (see the module docstring) and the statistics the whole batch's."""
        config = self.config
        share = self.parallel.share(batch)
        rows = share.rows
        ids, attention, mask = collate(rows, policy.tokenizer.pad_token_id, policy.device)
        states: list[torch.Tensor] = []
        hook = None
        if self.estimator.has_loss:
            hook = backbone_of(policy.model).register_forward_hook(
                lambda _module, _inputs, output: states.append(output.last_hidden_state)
            )
        try:
            logits, tokens, positions = action_token_logits(self._model_for(policy), ids, mask, attention)
        finally:
            if hook is not None:
                hook.remove()
        logprobs = token_logprobs(logits, tokens, positions)
        device = logprobs.device
        sampled = torch.zeros_like(logprobs).masked_scatter(
            positions, torch.tensor([p for sample in rows for p in sample.old_logprobs], device=device)
        )
        token_advantages = torch.zeros_like(logprobs).masked_scatter(
            positions,
            torch.tensor([advantages[s.episode][step] for s in rows for step in s.token_steps], device=device),
        )
        trained_tokens = sum(len(sample.old_logprobs) for sample in batch)
        denominator = token_count if config.loss_denominator == "all_tokens" else trained_tokens
        loss, stats = clipped_policy_loss(
            logprobs, sampled, token_advantages, positions, config.clip_ratio,
            clip_ratio_c=config.clip_ratio_c, token_count=denominator,
        )
        values = {"policy_loss": loss.item()}
        kl = torch.zeros((), device=device)
        if config.kl_coef > 0:
            with torch.no_grad(), policy.adapter_disabled():
                reference = token_logprobs(*action_token_logits(policy.model, ids, mask, attention))
            kl = kl_penalty(logprobs, reference, positions, clamp=config.kl_clamp, token_count=denominator)
            loss = loss + config.kl_coef * kl
        if self.estimator.has_loss:
            extra, named = self.estimator.loss(estimate, states[0], rows, sum(len(s.decisions) for s in batch))
            loss = loss + extra
            values |= named
        values |= {
            "kl": kl.item(),
            "logprob_gap_max": (logprobs.detach() - sampled).abs()[positions].max().item(),
            "approx_kl": stats["approx_kl"],
            "clip_fraction": stats["clip_fraction"],
            "entropy": entropy_from_logits(logits.detach()).mean().item(),
            "action_tokens": float(len(tokens)),
        }
        means, maxima = ("approx_kl", "clip_fraction", "entropy"), ("logprob_gap_max",)
        return loss * share.weight, self.parallel.combine(values, share.present, means=means, maxima=maxima)


def backbone_of(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body of a (peft-wrapped) causal LM: what produces the last hidden states."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, base.base_model_prefix)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-probs of the action tokens laid out as ``(rows, length - 1)``: at the positions predicting them, 0 elsewhere."""
    chosen = -F.cross_entropy(logits, tokens, reduction="none")
    return torch.zeros(targets.shape, device=logits.device).masked_scatter(targets, chosen)
