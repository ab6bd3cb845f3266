"""PPO: the shared policy-gradient loop with a critic: a value head on the policy's backbone, GAE over turns.

:class:`ValueCritic` is PPO's advantage estimator:

1. a no-grad pass reads ``V_old(s_t)`` for every step: the value head (``Linear(hidden_size, 1)``,
   float32) on the backbone's last hidden state at the step's last prompt token, the state the action was
   chosen in (with one sequence per episode, every step's state is read from the same pass);
2. per episode, GAE over its turns (:func:`~prism_agents.learners.advantages.gae`, ``rl.ppo.gamma`` and
   ``rl.ppo.lam``) on the shaped rewards gives the advantages and the value targets ``returns = A + V_old``.
   An episode that ended (or failed: a worker crash, a timeout, a full context) is valued 0 after its last
   turn; one the step limit cut (:attr:`~prism_agents.types.Trajectory.truncated`) bootstraps from
   ``V_old(s_T)``, the head's value of the state it stopped in
   (:func:`~prism_agents.learners.rl_samples.final_state_sample`). The advantages are then normalised over
   all the iteration's steps, as one group (:func:`~prism_agents.learners.advantages.group_normalize`: mean
   subtracted, divided by the sample std when ``rl.normalize_std``);
3. its loss, added to the loop's: ``rl.ppo.value_coef`` x the clipped value loss (``rl.ppo.value_clip``
   around ``V_old``) on the values of the same forward pass, so the value loss trains the shared LoRA
   adapter as well as the head. The head's parameters are an AdamW group at ``rl.ppo.value_learning_rate``
   beside the adapter's; the gradient norm is clipped over both.

With a critic every sample trains (its value loss), whatever its advantage; an iteration without policy
steps or sampled tokens trains nothing, value head included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prism_agents.config.rl import RLConfig
from prism_agents.learners.advantages import gae, group_normalize
from prism_agents.learners.losses import clipped_value_loss
from prism_agents.learners.policy_gradient import AdvantageEstimator, Estimate, PolicyGradientLearner, backbone_of
from prism_agents.learners.rl_samples import RLSample, final_state_sample, shaped_rewards
from prism_agents.learners.tokens import collate, length_batches
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.registry import LEARNERS
from prism_agents.types import Trajectory


def prompt_state_values(head: torch.nn.Linear, states: torch.Tensor, batch: Sequence[RLSample]) -> torch.Tensor:
    """``V(s_t)`` of every decision of ``batch`` in order (samples, then their steps): the head on the hidden
    state of each step's last prompt token."""
    rows = torch.tensor([row for row, s in enumerate(batch) for _ in s.decisions], device=states.device)
    last_prompt = torch.tensor([position for s in batch for _, position in s.decisions], device=states.device)
    return head(states[rows, last_prompt].float()).squeeze(-1)


@dataclass(frozen=True)
class ValueTargets(Estimate):
    """The critic's estimate of one iteration, per episode and step: advantages and what the value loss fits."""

    old_values: list[list[float]] = field(kw_only=True)
    """``V_old(s_t)``: the value head's estimate before the update."""
    returns: list[list[float]] = field(kw_only=True)
    """Value targets ``A_t + V_old(s_t)`` (``A_t`` before normalisation)."""

    @classmethod
    def from_episodes(
        cls, episodes: Sequence[Trajectory], old_values: list[list[float]], last_values: list[float], config: RLConfig
    ) -> ValueTargets:
        """GAE per episode on the shaped rewards, bootstrapped from ``last_values[i]`` after episode i's last turn
        (0 unless it was truncated), the advantages normalised over the iteration's steps."""
        raw, returns = [], []
        for episode, values, last in zip(episodes, old_values, last_values):
            rewards = shaped_rewards(episode, config.reward)
            advantages, targets = gae(rewards, values, config.ppo.gamma, config.ppo.lam, last_value=last)
            raw.append(advantages)
            returns.append(targets)
        flat = [a for advantages in raw for a in advantages]
        normalized = iter(group_normalize(flat, [0] * len(flat), config.normalize_std))
        advantages = [[next(normalized) for _ in row] for row in raw]
        return cls(advantages, _value_metrics(old_values, returns), old_values=old_values, returns=returns)


def _value_metrics(old_values: list[list[float]], returns: list[list[float]]) -> dict[str, float]:
    """``value_mean`` (of ``V_old``) and ``explained_variance`` ``1 - Var(R - V_old) / Var(R)`` over the
    iteration's steps (0 when the returns do not vary; both 0 for an iteration without steps)."""
    values = [v for episode in old_values for v in episode]
    targets = [r for episode in returns for r in episode]
    if not values:
        return {"value_mean": 0.0, "explained_variance": 0.0}
    spread = _variance(targets)
    explained = 1.0 - _variance([r - v for r, v in zip(targets, values)]) / spread if spread > 0 else 0.0
    return {"value_mean": math.fsum(values) / len(values), "explained_variance": explained}


def _variance(values: Sequence[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.fsum((x - mean) ** 2 for x in values) / len(values)


class ValueCritic(AdvantageEstimator):
    """PPO's estimator: a value head on the shared backbone, GAE over turns (see the module docstring)."""

    has_loss = True

    def __init__(self, config: RLConfig) -> None:
        self.config = config
        self.value_head: torch.nn.Linear | None = None
        """The head, created on the first use with a policy (zero init: every ``V`` starts at 0)."""

    def value_head_for(self, policy: Policy) -> torch.nn.Linear:
        """The value head, created for ``policy``'s hidden size and device on the first call."""
        if self.value_head is None:
            self.value_head = torch.nn.Linear(policy.model.config.hidden_size, 1, device=policy.device, dtype=torch.float32)
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)
        return self.value_head

    def state_values(self, policy: Policy, samples: Sequence[RLSample]) -> list[float]:
        """``V(s_t)`` of every decision of ``samples`` (no gradient), in order (samples, then their steps),
        batched under ``rl.batch_tokens``."""
        head = self.value_head_for(policy)
        per_sample: list[list[float]] = [[] for _ in samples]
        lengths = [len(sample.input_ids) for sample in samples]
        with torch.no_grad():
            for batch in length_batches(lengths, self.config.batch_tokens):
                chosen = [samples[index] for index in batch]
                ids, attention, _ = collate(chosen, policy.tokenizer.pad_token_id, policy.device)
                states = backbone_of(policy.model)(input_ids=ids, attention_mask=attention).last_hidden_state
                values = iter(prompt_state_values(head, states, chosen).tolist())
                for index, sample in zip(batch, chosen):
                    per_sample[index] = [next(values) for _ in sample.decisions]
        return [value for values in per_sample for value in values]

    def estimate(
        self, policy: Policy, episodes: Sequence[Trajectory], samples: Sequence[RLSample], prompts: PromptBuilder
    ) -> ValueTargets:
        """GAE advantages and value targets from the head's values of every step's state (and of the final state
        of each truncated episode)."""
        finals = [final_state_sample(episode, number, prompts) for number, episode in enumerate(episodes) if episode.truncated]
        values = iter(self.state_values(policy, [*samples, *finals]))
        old_values = [[0.0] * len(episode.steps) for episode in episodes]
        for sample in samples:
            for step, _ in sample.decisions:
                old_values[sample.episode][step] = next(values)
        last_values = [0.0] * len(episodes)
        for final in finals:
            last_values[final.episode] = next(values)
        return ValueTargets.from_episodes(episodes, old_values, last_values, self.config)

    def parameter_groups(self, policy: Policy) -> list[dict[str, Any]]:
        """The head's parameters at ``rl.ppo.value_learning_rate``."""
        return [{"params": list(self.value_head_for(policy).parameters()), "lr": self.config.ppo.value_learning_rate}]

    def modules(self, policy: Policy) -> list[torch.nn.Module]:
        """The value head."""
        return [self.value_head_for(policy)]

    def loss(
        self, estimate: Estimate, states: torch.Tensor, batch: Sequence[RLSample], decisions: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``rl.ppo.value_coef`` x the clipped value loss of ``batch``'s steps (summed, divided by ``decisions``);
        its value_loss."""
        assert isinstance(estimate, ValueTargets) and self.value_head is not None  # made by estimate()
        old_values, returns = (
            torch.tensor([table[s.episode][step] for s in batch for step, _ in s.decisions], device=states.device)
            for table in (estimate.old_values, estimate.returns)
        )
        values = prompt_state_values(self.value_head, states, batch)
        value_loss = clipped_value_loss(values, old_values, returns, None, self.config.ppo.value_clip, count=decisions)
        return self.config.ppo.value_coef * value_loss, {"value_loss": value_loss.item()}

    def state_dict(self) -> dict[str, Any]:
        """The value head's weights (nothing before it exists)."""
        return {} if self.value_head is None else {"value_head": self.value_head.state_dict()}

    def load_state_dict(self, state: dict[str, Any], path: Path, policy: Policy) -> None:
        """Load the value head; refuses a file another RL learner wrote."""
        if "value_head" not in state:
            raise ValueError(f"{path} holds no PPO value head: it was written by another RL learner (rl.learner changed?)")
        self.value_head_for(policy).load_state_dict(state["value_head"])


@LEARNERS.register("ppo")
class PPOLearner(PolicyGradientLearner):
    """PPO with a value head on the shared backbone; turn-level GAE advantages (see the module docstring)."""

    def __init__(self, config: RLConfig) -> None:
        self.critic = ValueCritic(config)
        """The estimator: value head, GAE, value loss."""
        super().__init__(config, self.critic)
