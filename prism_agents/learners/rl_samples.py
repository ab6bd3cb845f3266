"""From played episodes to what an RL learner trains on: shaped rewards and one token sample per policy step.

A policy step's sample is the exact prompt the generator was given (rebuilt
with the run's :class:`PromptBuilder`, which the rollout used) followed by the
completion tokens it sampled; the loss mask is 1 on the completion tokens only,
and the generator's log-probs of those tokens are the behaviour policy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prism_agents.config.rl import RewardConfig
from prism_agents.policies.prompts import PromptBuilder, TrainingExample
from prism_agents.types import Trajectory


@dataclass
class StepSample(TrainingExample):
    """One policy step as a training sequence: ``input_ids`` = prompt + sampled completion, ``loss_mask``
    1 on the completion tokens only."""

    old_logprobs: list[float]
    """Log-prob of each completion token under the policy that sampled it."""
    episode: int
    """Index of the episode in the iteration's list."""


def shaped_rewards(episode: Trajectory, reward: RewardConfig) -> list[float]:
    """Per step: ``reward.win`` x the episode's score on its last step, minus the invalid-action and step penalties.

    The score is the benchmark's own (ALFWorld: 1 when won, else 0; WebShop: the purchase's reward in [0, 1]).
    """
    rewards = []
    for index, step in enumerate(episode.steps):
        value = -reward.step_penalty - (0.0 if step.valid_action else reward.invalid_action_penalty)
        if index == len(episode.steps) - 1:
            value += reward.win * episode.score
        rewards.append(value)
    return rewards


def step_samples(episodes: Sequence[Trajectory], prompts: PromptBuilder) -> list[StepSample]:
    """One sample per policy step of every episode, in order; refuses steps without sampled tokens.

    The rebuilt prompt must have the length the rollout recorded: a prompt setting changed between
    playing and training would otherwise train on a prompt the policy never saw.
    """
    samples = []
    for number, episode in enumerate(episodes):
        for index, step in enumerate(episode.steps):
            if step.completion_token_ids is None or step.completion_logprobs is None:
                raise ValueError(f"{episode.trajectory_id} step {index}: no sampled tokens recorded (an expert step?)")
            prompt = prompts.prompt_ids(episode.instruction, episode.steps[:index], step.observation, step.admissible_actions)
            if len(prompt) != step.prompt_tokens:
                raise ValueError(
                    f"{episode.trajectory_id} step {index}: the rebuilt prompt has {len(prompt)} tokens but the "
                    f"served one had {step.prompt_tokens}; the prompt settings changed after the episode was played"
                )
            completion = list(step.completion_token_ids)
            mask = [0] * len(prompt) + [1] * len(completion)
            samples.append(
                StepSample(prompt + completion, mask, episode.trajectory_id, index, list(step.completion_logprobs), number)
            )
    return samples
