"""From played episodes to what an RL learner trains on: shaped rewards and token samples of the served tokens.

A sample is built from the token ids the rollout recorded
(:attr:`~prism_agents.types.Step.prompt_token_ids` and the sampled completions), never from a re-rendered
conversation, so what is trained is exactly what was served. With ``rl.sequences: episode`` each context is
one sample: with ``prompt.history: full`` the whole episode (its first prompt, then every completion and the
tokens that followed it), the loss mask 1 on every sampled completion token and each token tagged with its
step, so it takes that step's advantage. With ``rl.sequences: step``, and whenever a step's prompt started
afresh (``prompt.history: window``), a step is a sample of its own: its whole served prompt and its
completion. Under the causal mask both give every completion token the same log-prob, so the loss and the
gradient are the same; per episode reads each token once instead of once per later step. The generator's
log-probs of the sampled tokens are the behaviour policy's. A truncated episode's final state (the prompt its
next step would have had) is a sample without completion, for a critic to value (:func:`final_state_sample`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prism_agents.config.rl import SEQUENCE_LAYOUTS, RewardConfig
from prism_agents.policies.prompts import PromptBuilder, TrainingExample, served_context
from prism_agents.types import Trajectory

@dataclass
class RLSample(TrainingExample):
    """Served tokens of one or more consecutive policy steps of an episode: ``loss_mask`` 1 on their sampled
    completion tokens only (``step`` is the step's index for a one-step sample, else None)."""

    old_logprobs: list[float]
    """Log-prob of each completion token (in order) under the policy that sampled it."""
    episode: int
    """Index of the episode in the iteration's list."""
    token_steps: list[int] = field(default_factory=list)
    """The step each completion token belongs to (aligned with ``old_logprobs``)."""
    decisions: list[tuple[int, int]] = field(default_factory=list)
    """Per step of the sample, in order: (step index, position of the last prompt token), the state its action
    was chosen in."""


def shaped_rewards(episode: Trajectory, reward: RewardConfig) -> list[float]:
    """Per step: ``reward.win`` x the environment's reward on the episode's last step, minus the step penalty
    and, when ``reward.invalid_action_penalty_at`` is ``reward``, the invalid-action penalty.

    The environment's reward is in [0, 1] (ALFWorld: 1 on the winning step; WebShop: the purchase's reward with
    ``reward_mode: scaled``, 1 only for a perfect purchase with ``success_only``).
    """
    in_reward = reward.invalid_action_penalty_at == "reward"
    rewards = []
    for index, step in enumerate(episode.steps):
        value = -reward.step_penalty - (reward.invalid_action_penalty if in_reward and not step.valid_action else 0.0)
        if index == len(episode.steps) - 1:
            value += reward.win * step.reward
        rewards.append(value)
    return rewards


def penalised_advantages(
    advantages: Sequence[Sequence[float]], episodes: Sequence[Trajectory], reward: RewardConfig
) -> list[list[float]]:
    """``advantages[episode][step]`` after the estimator, minus the invalid-action penalty on each invalid step when
    ``reward.invalid_action_penalty_at`` is ``advantage`` (unchanged otherwise: the penalty was in the rewards)."""
    charge = reward.invalid_action_penalty if reward.invalid_action_penalty_at == "advantage" else 0.0
    return [
        [a - (0.0 if step.valid_action else charge) for a, step in zip(row, episode.steps)]
        for row, episode in zip(advantages, episodes)
    ]


def rl_samples(episodes: Sequence[Trajectory], layout: str = "episode") -> list[RLSample]:
    """The samples of every policy step of ``episodes`` in order, one per context (``episode``) or per step
    (``step``); refuses steps whose served tokens were not recorded."""
    if layout not in SEQUENCE_LAYOUTS:
        raise ValueError(f"rl.sequences must be one of {', '.join(SEQUENCE_LAYOUTS)} (got {layout!r})")
    samples: list[RLSample] = []
    for number, episode in enumerate(episodes):
        context: list[int] = []
        for index, step in enumerate(episode.steps):
            if step.completion_token_ids is None or step.completion_logprobs is None or step.prompt_token_ids is None:
                raise ValueError(
                    f"{episode.trajectory_id} step {index}: no served tokens recorded (an expert step, or an episode "
                    "played by an older version); play the episode again"
                )
            prompt = (context if step.continues_context else []) + step.prompt_token_ids
            if len(prompt) != step.prompt_tokens:
                raise ValueError(
                    f"{episode.trajectory_id} step {index}: the recorded tokens make a {len(prompt)}-token prompt but "
                    f"the served one had {step.prompt_tokens}; the episode's record is damaged"
                )
            completion = list(step.completion_token_ids)
            if layout == "episode" and step.continues_context:
                sample = samples[-1]
                sample.input_ids += step.prompt_token_ids
                sample.loss_mask += [0] * len(step.prompt_token_ids)
                sample.step = None
            else:
                sample = RLSample(list(prompt), [0] * len(prompt), episode.trajectory_id, index, [], number)
                samples.append(sample)
            sample.decisions.append((index, len(sample.input_ids) - 1))
            sample.input_ids += completion
            sample.loss_mask += [1] * len(completion)
            sample.old_logprobs += list(step.completion_logprobs)
            sample.token_steps += [index] * len(completion)
            context = prompt + completion
    return samples


def final_state_sample(episode: Trajectory, number: int, prompts: PromptBuilder) -> RLSample:
    """The state a truncated episode stopped in, as the prompt its next step would have been served (no
    completion: nothing to train, a state to value); ``number`` is the episode's index in the iteration's list."""
    if episode.final_observation is None:
        raise ValueError(
            f"{episode.trajectory_id}: truncated, but no final_observation recorded (written by an older rollout); "
            "play the episode again to bootstrap its value"
        )
    added, continues = prompts.next_prompt_ids(
        episode.instruction, episode.steps, episode.final_observation, episode.final_admissible_actions
    )
    prompt = served_context(episode.steps) + added if continues else added
    return RLSample(prompt, [0] * len(prompt), episode.trajectory_id, len(episode.steps), [], number,
                    decisions=[(len(episode.steps), len(prompt) - 1)])
