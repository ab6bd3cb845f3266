"""RL samples: reward shaping and where the invalid-action penalty enters, samples made of exactly the served
tokens (one per step, or one per episode with full history), and a truncated episode's final state."""

import dataclasses

import pytest
from tiny_model import as_served, build_tokenizer, sample_trajectory

from prism_agents.config.rl import RewardConfig, RLConfig
from prism_agents.config.training import PromptConfig
from prism_agents.learners.grpo import GroupAdvantages
from prism_agents.learners.rl_samples import final_state_sample, penalised_advantages, rl_samples, shaped_rewards
from prism_agents.policies.prompts import PromptBuilder, served_context
from prism_agents.types import Trajectory


def played(prompts: PromptBuilder, invalid_step: int | None = None):
    """The sample episode as if a policy had played it: served tokens, log-probs, one invalid step if asked."""
    episode = as_served(sample_trajectory("policy:v1:train:0"), prompts)
    for index, step in enumerate(episode.steps):
        step.valid_action = index != invalid_step
    return episode


@pytest.fixture(params=["window", "full"])
def prompts(request):
    return PromptBuilder(build_tokenizer(), PromptConfig(history=request.param), "alfworld")


def with_final_reward(episode, reward: float, won: bool):
    """``episode`` whose last step the environment paid ``reward`` (its score follows the reward)."""
    steps = [*episode.steps[:-1], dataclasses.replace(episode.steps[-1], reward=reward)]
    return dataclasses.replace(episode, steps=steps, won=won, score=reward)


def test_rewards_pay_the_win_times_the_last_step_reward_and_charge_the_penalties(prompts):
    episode = with_final_reward(played(prompts, invalid_step=1), 1.0, won=True)
    reward = RewardConfig(win=10.0, invalid_action_penalty=0.5, step_penalty=0.1)
    assert shaped_rewards(episode, reward) == pytest.approx([-0.1, -0.6, -0.1, 9.9])
    lost = with_final_reward(episode, 0.0, won=False)
    assert shaped_rewards(lost, reward) == pytest.approx([-0.1, -0.6, -0.1, -0.1])
    partial_purchase = with_final_reward(episode, 0.75, won=False)  # a WebShop purchase scored 0.75
    assert shaped_rewards(partial_purchase, reward) == pytest.approx([-0.1, -0.6, -0.1, 7.4])
    success_only = dataclasses.replace(partial_purchase, steps=lost.steps)  # WebShop reward_mode success_only
    assert shaped_rewards(success_only, reward) == pytest.approx([-0.1, -0.6, -0.1, -0.1])


def test_every_step_becomes_its_served_prompt_plus_its_completion(prompts):
    episode = played(prompts)
    samples = rl_samples([episode, episode], "step")
    assert [(s.episode, s.step) for s in samples] == [(e, t) for e in (0, 1) for t in range(4)]
    for index, (sample, step) in enumerate(zip(samples, episode.steps)):
        prompt_length = len(sample.input_ids) - len(step.completion_token_ids)
        assert prompt_length == step.prompt_tokens
        assert sample.input_ids == served_context(episode.steps[: index + 1])
        assert sample.input_ids[prompt_length:] == step.completion_token_ids
        assert sample.loss_mask == [0] * prompt_length + [1] * len(step.completion_token_ids)
        assert sample.old_logprobs == step.completion_logprobs
        assert sample.decisions == [(index, prompt_length - 1)] and set(sample.token_steps) == {index}


def test_full_history_episode_is_one_sample_of_its_served_context(prompts):
    episode = played(prompts)
    samples = rl_samples([episode], "episode")
    if prompts.config.history == "window":  # every prompt starts afresh: one sample per step either way
        assert samples == rl_samples([episode], "step")
        return
    (sample,) = samples
    assert sample.input_ids == served_context(episode.steps) and sample.step is None
    assert [index for index, _ in sample.decisions] == [0, 1, 2, 3]
    for (index, position), step in zip(sample.decisions, episode.steps):
        assert position + 1 == step.prompt_tokens  # the token before the completion: the end of its served prompt
        completion = slice(position + 1, position + 1 + len(step.completion_token_ids))
        assert sample.input_ids[completion] == step.completion_token_ids and set(sample.loss_mask[completion]) == {1}
    assert sum(sample.loss_mask) == len(sample.old_logprobs) == sum(len(s.completion_token_ids) for s in episode.steps)
    assert sample.token_steps == [index for index, s in enumerate(episode.steps) for _ in s.completion_token_ids]
    for index, step in enumerate(episode.steps):  # canonical completions: the served prompt is the rendered one
        shown = prompts.prompt_ids(episode.instruction, episode.steps[:index], step.observation, step.admissible_actions)
        assert sample.input_ids[: step.prompt_tokens] == shown


def test_a_completion_cut_without_end_of_turn_is_closed_in_the_next_prompt(prompts):
    if prompts.config.history == "window":
        return
    cut = [prompts.tokenizer("go to", add_special_tokens=False).input_ids] * 4  # max_new_tokens reached each time
    episode = as_served(sample_trajectory("policy:v1:train:0"), prompts, completions=cut)
    eos = prompts.tokenizer.convert_tokens_to_ids(prompts.tokenizer.eos_token)
    assert all(step.prompt_token_ids[0] == eos for step in episode.steps[1:])
    (sample,) = rl_samples([episode])
    assert sample.input_ids == served_context(episode.steps) and sum(sample.loss_mask) == 4 * len(cut[0])


def test_a_damaged_record_or_an_expert_step_is_refused(prompts):
    episode = played(prompts)
    episode.steps[2].prompt_tokens += 1
    with pytest.raises(ValueError, match="step 2: the recorded tokens make a .*-token prompt but the served one had"):
        rl_samples([episode])
    with pytest.raises(ValueError, match="expert:sample step 0: no served tokens recorded"):
        rl_samples([sample_trajectory()])
    with pytest.raises(ValueError, match="rl.sequences must be one of episode, step"):
        rl_samples([played(prompts)], "turn")


def test_penalty_at_advantage_leaves_the_rewards_and_charges_only_the_invalid_step(prompts):
    episode = played(prompts, invalid_step=1)
    reward = RewardConfig(win=10.0, invalid_action_penalty=0.5, step_penalty=0.1, invalid_action_penalty_at="advantage")
    assert shaped_rewards(episode, reward) == pytest.approx([-0.1, -0.1, -0.1, 9.9])
    assert penalised_advantages([[1.0, 1.0, 1.0, 1.0]], [episode], reward) == [[1.0, 0.5, 1.0, 1.0]]
    folded = dataclasses.replace(reward, invalid_action_penalty_at="reward")
    assert penalised_advantages([[1.0, 1.0, 1.0, 1.0]], [episode], folded) == [[1.0, 1.0, 1.0, 1.0]]


@pytest.mark.parametrize(
    "place, expected",
    [
        # returns: won 10 - 0.5 = 9.5, lost 0; mean 4.75: every step of an episode gets its episode's +-4.75
        ("reward", [[4.75] * 4, [-4.75] * 4]),
        # returns 10 and 0: +-5; then the invalid step alone loses 0.5
        ("advantage", [[5.0, 4.5, 5.0, 5.0], [-5.0] * 4]),
    ],
)
def test_grpo_advantages_with_the_penalty_in_either_place_by_hand(prompts, place, expected):
    won = played(prompts, invalid_step=1)
    lost = dataclasses.replace(with_final_reward(played(prompts), 0.0, won=False), trajectory_id="policy:v1:train:0#1")
    reward = RewardConfig(win=10.0, invalid_action_penalty=0.5, invalid_action_penalty_at=place)
    config = RLConfig(normalize_std=False, reward=reward)
    estimate = GroupAdvantages(config).estimate(None, [won, lost], [], prompts)
    assert penalised_advantages(estimate.advantages, [won, lost], reward) == expected  # exact in binary


def test_final_state_is_the_prompt_the_next_step_would_have_been_served(prompts):
    episode = dataclasses.replace(
        played(prompts), truncated=True, final_observation="You arrive at drawer 1.", final_admissible_actions=["look"]
    )
    sample = final_state_sample(episode, 3, prompts)
    expected = prompts.prompt_ids(episode.instruction, episode.steps, "You arrive at drawer 1.", ["look"])
    if prompts.config.history == "full":  # the served context, then the next turn
        added, _ = prompts.next_prompt_ids(episode.instruction, episode.steps, "You arrive at drawer 1.", ["look"])
        assert added == expected[-len(added):]
        expected = served_context(episode.steps) + added
    assert sample.input_ids == expected and sample.loss_mask == [0] * len(expected)
    assert (sample.episode, sample.step, sample.old_logprobs) == (3, 4, [])
    assert sample.decisions == [(4, len(expected) - 1)]
    with pytest.raises(ValueError, match="truncated, but no final_observation recorded"):
        final_state_sample(dataclasses.replace(episode, final_observation=None), 0, prompts)


def test_truncation_round_trips_and_older_files_read_as_ended(prompts):
    episode = dataclasses.replace(played(prompts), truncated=True, final_observation="end", final_admissible_actions=["a"])
    assert Trajectory.from_dict(episode.to_dict()) == episode
    older = episode.to_dict()
    for key in ("truncated", "final_observation", "final_admissible_actions"):
        del older[key]
    read = Trajectory.from_dict(older)
    assert (read.truncated, read.final_observation, read.final_admissible_actions) == (False, None, [])
