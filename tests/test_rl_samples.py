"""RL samples: reward shaping, and each policy step rebuilt as exactly the prompt it was served plus its tokens."""

import dataclasses

import pytest
from tiny_model import build_tokenizer, sample_trajectory

from prism_agents.config.rl import RewardConfig
from prism_agents.config.training import PromptConfig
from prism_agents.learners.rl_samples import shaped_rewards, step_samples
from prism_agents.policies.prompts import PromptBuilder


def played(prompts: PromptBuilder, invalid_step: int | None = None):
    """The sample episode as if a policy had played it: sampled tokens, log-probs and served prompt lengths."""
    episode = sample_trajectory("policy:v1:train:0")
    steps = []
    for index, step in enumerate(episode.steps):
        prompt = prompts.prompt_ids(episode.instruction, steps, step.observation, step.admissible_actions)
        tokens = prompts.tokenizer(step.action, add_special_tokens=False).input_ids
        steps.append(dataclasses.replace(
            step, completion_token_ids=tokens, completion_logprobs=[-0.5] * len(tokens), prompt_tokens=len(prompt),
            valid_action=index != invalid_step,
        ))
    return dataclasses.replace(episode, steps=steps)


@pytest.fixture(params=["window", "full"])
def prompts(request):
    return PromptBuilder(build_tokenizer(), PromptConfig(history=request.param), "alfworld")


def test_rewards_pay_the_win_times_the_score_on_the_last_step_and_charge_the_penalties(prompts):
    episode = played(prompts, invalid_step=1)
    reward = RewardConfig(win=10.0, invalid_action_penalty=0.5, step_penalty=0.1)
    assert shaped_rewards(episode, reward) == pytest.approx([-0.1, -0.6, -0.1, 9.9])
    lost = dataclasses.replace(episode, won=False, score=0.0)
    assert shaped_rewards(lost, reward) == pytest.approx([-0.1, -0.6, -0.1, -0.1])
    partial_purchase = dataclasses.replace(episode, won=False, score=0.75)  # a WebShop purchase scored 0.75
    assert shaped_rewards(partial_purchase, reward) == pytest.approx([-0.1, -0.6, -0.1, 7.4])


def test_every_step_becomes_its_served_prompt_plus_its_completion(prompts):
    episode = played(prompts)
    samples = step_samples([episode, episode], prompts)
    assert [(s.episode, s.step) for s in samples] == [(e, t) for e in (0, 1) for t in range(4)]
    for sample, step in zip(samples, episode.steps):
        prompt_length = len(sample.input_ids) - len(step.completion_token_ids)
        assert prompt_length == step.prompt_tokens
        assert sample.input_ids[prompt_length:] == step.completion_token_ids
        assert sample.loss_mask == [0] * prompt_length + [1] * len(step.completion_token_ids)
        assert sample.old_logprobs == step.completion_logprobs


def test_a_changed_prompt_setting_or_an_expert_step_is_refused(prompts):
    episode = played(prompts)
    other = PromptBuilder(prompts.tokenizer, PromptConfig(history=prompts.config.history, max_admissible_actions=1), "alfworld")
    with pytest.raises(ValueError, match="step 0: the rebuilt prompt has .* tokens but the served one had"):
        step_samples([episode], other)
    with pytest.raises(ValueError, match="expert:sample step 0: no sampled tokens recorded"):
        step_samples([sample_trajectory()], prompts)
