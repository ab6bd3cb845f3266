"""Config section ``rl``: reinforcement learning on the router's RL share, after SFT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from prism_agents.config.base import require, require_one_of
from prism_agents.config.generation import SamplingConfig

ADVANTAGE_ESTIMATORS = ("grpo", "gigpo")
PENALTY_PLACES = ("reward", "advantage")
"""Where ``rl.reward.invalid_action_penalty`` enters (see :attr:`RewardConfig.invalid_action_penalty_at`)."""
LOSS_DENOMINATORS = ("all_tokens", "trained_tokens")
"""Token counts the policy loss may divide by (see :attr:`RLConfig.loss_denominator`)."""
SEQUENCE_LAYOUTS = ("episode", "step")
"""How an episode's served tokens become training sequences (see :attr:`RLConfig.sequences`)."""


@dataclass
class RewardConfig:
    """Reward shaping: what one step of an RL episode earns (the learner sees only these rewards)."""

    win: float = 10.0
    """Paid on an episode's last step times the environment's reward there, in [0, 1] (ALFWorld: 1 when won;
    WebShop: the purchase's reward, or 1 only for a perfect one with ``reward_mode: success_only``); verl-agent
    uses 10 on both benchmarks."""
    invalid_action_penalty: float = 0.1
    """Subtracted on every step whose parsed action was not among the admissible actions."""
    invalid_action_penalty_at: str = "reward"
    """Where that penalty enters: ``reward`` (part of the step's reward, so it is summed into the episode
    return, discounted into earlier steps' returns and normalised with them) or ``advantage`` (left out of
    the rewards and subtracted from the invalid step's own advantage after the estimator: it reaches no
    other step and its size does not depend on the group's spread; verl-agent also charges only that step,
    but subtracts from its score before the group normalisation)."""
    step_penalty: float = 0.0
    """Subtracted on every step (a cost of time; 0 leaves episode length to the win reward alone)."""

    def validate(self) -> None:
        require(self.invalid_action_penalty >= 0, "invalid_action_penalty", f"must be >= 0 (got {self.invalid_action_penalty})")
        require(self.step_penalty >= 0, "step_penalty", f"must be >= 0 (got {self.step_penalty})")
        require_one_of(self.invalid_action_penalty_at, PENALTY_PLACES, "invalid_action_penalty_at")


@dataclass
class PPOConfig:
    """Settings of the ``ppo`` learner only: its value head and generalized advantage estimation over turns."""

    gamma: float = 1.0
    """Discount per turn in GAE."""
    lam: float = 0.95
    """GAE lambda (1 = Monte-Carlo returns, 0 = one-step TD)."""
    value_coef: float = 0.5
    """Weight of the value loss added to the policy loss."""
    value_clip: float = 0.2
    """Clip range of the value prediction around its value at rollout time (PPO's clipped value loss)."""
    value_learning_rate: float = 1e-3
    """AdamW learning rate of the value head (the LoRA adapter uses ``rl.learning_rate``)."""

    def validate(self) -> None:
        require(0 <= self.gamma <= 1, "gamma", f"must be in [0, 1] (got {self.gamma})")
        require(0 <= self.lam <= 1, "lam", f"must be in [0, 1] (got {self.lam})")
        require(self.value_coef >= 0, "value_coef", f"must be >= 0 (got {self.value_coef})")
        require(self.value_clip > 0, "value_clip", f"must be positive (got {self.value_clip})")
        require(self.value_learning_rate > 0, "value_learning_rate", f"must be positive (got {self.value_learning_rate})")


@dataclass
class RLConfig:
    """RL after SFT on the tasks of the demonstrations routed to ``rl`` or ``both``."""

    learner: str = "grpo"
    """RL learner: ``grpo`` or ``ppo`` (registry names), or a plug-in (entry point in the group
    ``prism_agents.learners``, or ``package.module:Class``) whose ``config_class`` is this section."""
    advantage: str = "grpo"
    """Advantage estimator of the ``grpo`` learner: ``grpo`` (episode return normalised within its group)
    or ``gigpo`` (that plus a step-level term from identical observations across the group)."""
    iterations: int = 2
    """RL iterations; each plays ``tasks_per_iteration`` x ``group_size`` episodes, updates the adapter
    and saves it as the next adapter version."""
    task_passes: Optional[float] = None
    """When set, the number of iterations follows the size of the RL share instead of ``iterations``:
    ceil(task_passes x RL tasks / tasks_per_iteration), so that every task routed to RL is played about
    task_passes times. RL's cost then grows with its share (all-RL costs twice a median split), as when
    the paper trains GRPO over its RL set; a fixed ``iterations`` gives every variant the same RL budget."""
    tasks_per_iteration: int = 4
    """Tasks played per iteration, drawn in a seeded order from the RL share (cycling through it)."""
    group_size: int = 4
    """G: episodes played per task and iteration (GRPO's group)."""
    max_steps: Optional[int] = None
    """Step limit of an RL episode; None uses ``eval.max_steps`` (or ``environment.max_steps``)."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=32, temperature=1.0))
    """Decoding of RL episodes: temperature and top_p must stay 1, the distribution whose log-probs the
    importance ratio compares (the generator returns and the learner recomputes untempered log-probs)."""
    learning_rate: float = 1e-4
    """AdamW learning rate of the adapter (constant)."""
    epochs: int = 1
    """Passes over one iteration's samples (see ``sequences``)."""
    batch_tokens: int = 4096
    """Token budget of one optimizer step (samples of similar length batched together)."""
    clip_ratio: float = 0.2
    """PPO-style clipping of the policy ratio to [1 - clip_ratio, 1 + clip_ratio]."""
    clip_ratio_c: Optional[float] = 3.0
    """Dual clip (verl's ``clip_ratio_c``, its default 3): a token with a negative advantage loses at most
    ``clip_ratio_c x |A|``, so a ratio far above 1 (a stale or mismatched sample) cannot drive an unbounded
    step; the plain clip leaves that side open. Inactive while every ratio stays below it (one epoch on
    fresh samples); None turns it off. Must be above 1."""
    kl_coef: float = 0.0
    """Weight of the KL penalty to the reference model (the base model, adapter disabled); 0 skips the
    reference forward pass."""
    kl_clamp: Optional[float] = 10.0
    """Per-token bound of the k3 KL term, clamped to [-kl_clamp, kl_clamp] (verl's low_var_kl uses 10) so one
    token the reference finds unlikely cannot dominate the penalty; a clamped token gets no KL gradient.
    None leaves it unbounded."""
    loss_denominator: str = "all_tokens"
    """Token mean of a batch's policy loss: ``all_tokens`` divides by every action token of the batch, those of
    samples left out because they could change nothing (advantage 0, no KL, no critic) included, so leaving
    them out saves compute without changing the update; ``trained_tokens`` leaves them out before batching
    and divides by the rest (the behaviour before this setting: the fewer samples carry a signal, the larger
    their step)."""
    sequences: str = "episode"
    """Training sequences of an iteration: ``episode`` trains each served context once (with
    ``prompt.history: full`` the whole episode, the loss on every sampled completion with its step's
    advantage); ``step`` trains every step as its own sequence holding its whole prompt, which gives the same
    loss and gradient on one batch but reads each earlier turn again for every later step (kept to measure
    against). The same with ``prompt.history: window``, where every step's prompt starts afresh."""
    normalize_std: bool = True
    """Divide group-relative advantages by the group's standard deviation (false: subtract the mean only)."""
    gigpo_gamma: float = 0.95
    """GiGPO: discount of the step-level returns."""
    gigpo_step_weight: float = 1.0
    """GiGPO: weight of the step-level advantage added to the episode-level one."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping."""
    seed: int = 0
    """Seed of the task order; unless set, the run's ``seed``."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward shaping."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """Settings of the ``ppo`` learner."""

    def validate(self) -> None:
        require(bool(self.learner.strip()), "learner", "must name an RL learner such as 'grpo' or 'ppo'")
        require_one_of(self.advantage, ADVANTAGE_ESTIMATORS, "advantage")
        require(self.iterations >= 0, "iterations", f"must be 0 (no RL) or more (got {self.iterations})")
        require(self.task_passes is None or self.task_passes > 0, "task_passes", f"must be above 0 (got {self.task_passes})")
        require(self.tasks_per_iteration >= 1, "tasks_per_iteration", f"must be at least 1 (got {self.tasks_per_iteration})")
        require(self.group_size >= 1, "group_size", f"must be at least 1 (got {self.group_size})")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be at least 1 (got {self.max_steps})")
        require(self.learning_rate > 0, "learning_rate", f"must be positive (got {self.learning_rate})")
        require(self.epochs >= 1, "epochs", f"must be at least 1 (got {self.epochs})")
        require(self.batch_tokens >= 16, "batch_tokens", f"must be at least 16 (got {self.batch_tokens})")
        require(0 < self.clip_ratio < 1, "clip_ratio", f"must be in (0, 1) (got {self.clip_ratio})")
        require(
            self.clip_ratio_c is None or self.clip_ratio_c > 1,
            "clip_ratio_c",
            f"must be above 1, or null to turn the dual clip off (got {self.clip_ratio_c})",
        )
        require(self.kl_coef >= 0, "kl_coef", f"must be >= 0 (got {self.kl_coef})")
        require(
            self.kl_clamp is None or self.kl_clamp > 0, "kl_clamp", f"must be positive, or null for no clamp (got {self.kl_clamp})"
        )
        require_one_of(self.loss_denominator, LOSS_DENOMINATORS, "loss_denominator")
        require_one_of(self.sequences, SEQUENCE_LAYOUTS, "sequences")
        require(0 <= self.gigpo_gamma <= 1, "gigpo_gamma", f"must be in [0, 1] (got {self.gigpo_gamma})")
        require(self.gigpo_step_weight >= 0, "gigpo_step_weight", f"must be >= 0 (got {self.gigpo_step_weight})")
        require(self.grad_clip >= 0, "grad_clip", f"must be >= 0 (got {self.grad_clip})")
        for name, value in (("temperature", self.sampling.temperature), ("top_p", self.sampling.top_p)):
            require(
                value == 1.0,
                f"sampling.{name}",
                f"must be 1 (got {value}): the importance ratio divides the learner's log-probs by the generator's, "
                "and both are the model's own temperature-1, untruncated log-probs, so RL episodes must be sampled "
                f"from that distribution; remove rl.sampling.{name} from the config",
            )
