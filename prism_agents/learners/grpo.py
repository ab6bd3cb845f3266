"""GRPO: the shared policy-gradient loop with group-relative advantages (GRPO or GiGPO), no critic.

The shaped rewards (:func:`~prism_agents.learners.rl_samples.shaped_rewards`) become a per-step advantage:
``grpo`` normalises each episode's return within its group (the episodes of the same task in this
iteration) and gives it to every step; ``gigpo`` adds a step-level term from identical observations across
the group (:mod:`~prism_agents.learners.advantages`). The update itself is
:class:`~prism_agents.learners.policy_gradient.PolicyGradientLearner`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from prism_agents.config.rl import RLConfig
from prism_agents.learners.advantages import EpisodeSteps, episode_returns, gigpo_advantages, grpo_advantages
from prism_agents.learners.policy_gradient import AdvantageEstimator, Estimate, PolicyGradientLearner
from prism_agents.learners.rl_samples import RLSample, shaped_rewards
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.registry import LEARNERS
from prism_agents.types import Trajectory


class GroupAdvantages(AdvantageEstimator):
    """``rl.advantage`` over groups of episodes of one task: ``grpo`` per episode, ``gigpo`` per step."""

    def __init__(self, config: RLConfig) -> None:
        self.config = config

    def estimate(
        self, policy: Policy, episodes: Sequence[Trajectory], samples: Sequence[RLSample], prompts: PromptBuilder
    ) -> Estimate:
        """Per episode, per step: the configured estimator's advantage (the model is not consulted)."""
        config = self.config
        rewards = [shaped_rewards(episode, config.reward) for episode in episodes]
        groups = [episode.task.task_id for episode in episodes]
        if config.advantage == "gigpo":
            steps = [EpisodeSteps(r, [step.observation for step in e.steps]) for r, e in zip(rewards, episodes)]
            return Estimate(
                gigpo_advantages(steps, groups, config.gigpo_gamma, config.gigpo_step_weight, normalize_std=config.normalize_std)
            )
        per_episode = grpo_advantages(episode_returns(rewards), groups, normalize_std=config.normalize_std)
        return Estimate([[advantage] * len(episode.steps) for advantage, episode in zip(per_episode, episodes)])


@LEARNERS.register("grpo")
class GRPOLearner(PolicyGradientLearner):
    """Group-relative advantages (GRPO or GiGPO) and the clipped policy-ratio objective on action tokens."""

    def __init__(self, config: RLConfig) -> None:
        super().__init__(config, GroupAdvantages(config))
