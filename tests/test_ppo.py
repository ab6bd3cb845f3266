"""The PPO learner: its value head reads the state the action was chosen in, fits the returns, bootstraps a truncated
episode, trains the adapter too, and survives a save / load of its state; and the loop it shares with GRPO keeps
left-out samples' tokens in the token mean."""

import dataclasses
import math

import pytest
import torch
from tiny_model import outcome_episodes

from prism_agents.config.model import LoraConfig
from prism_agents.config.rl import PPOConfig, RewardConfig, RLConfig
from prism_agents.config.training import PromptConfig
from prism_agents.learners.grpo import GRPOLearner
from prism_agents.learners.policy_gradient import Estimate
from prism_agents.learners.ppo import PPOLearner
from prism_agents.learners.rl_samples import rl_samples
from prism_agents.learners.tokens import action_token_losses, collate
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.registry import LEARNERS

GRPO_KEYS = {
    "steps", "samples", "tokens_trained", "padding_share", "policy_loss", "kl", "approx_kl", "clip_fraction", "entropy",
    "grad_norm", "advantage_abs_mean", "wall_s",
}


@pytest.fixture
def policy(model_config):
    return Policy.load(model_config, LoraConfig(rank=8))


@pytest.fixture
def prompts(policy):
    return PromptBuilder(policy.tokenizer, PromptConfig(history="window"), "alfworld")


def config(**changes):
    """Monte-Carlo value targets (lam 1), win reward 1, a quick adapter learning rate; no dual clip, since the tests
    train on the same episodes many times and their stale ratios would grow past it."""
    settings = dict(learning_rate=3e-3, epochs=2, batch_tokens=2048, clip_ratio_c=None, reward=RewardConfig(win=1.0))
    return RLConfig(**settings | {"ppo": PPOConfig(lam=1.0)} | changes)


def played(policy, prompts, outcomes):
    """Episodes of the sample task, one per outcome (won or not), each with its own goal, whose steps carry the
    tokens of their action as the sampled completion and the policy's own log-probs of them."""
    episodes = outcome_episodes(prompts, outcomes)
    for sample in rl_samples(episodes, "step"):
        ids, attention, mask = collate([sample], policy.tokenizer.pad_token_id, policy.device)
        with torch.no_grad():
            losses, _ = action_token_losses(policy.model, ids, mask, attention)
        episodes[sample.episode].steps[sample.step].completion_logprobs = (-losses).tolist()
    return episodes


def monte_carlo_error(learner, policy, prompts, episodes):
    """Mean squared error of V(s_t) against the undiscounted return from step t (the win reward, 0 or 1)."""
    samples = rl_samples(episodes)
    values = learner.critic.state_values(policy, samples)
    returns = [float(episodes[s.episode].won) for s in samples]
    return sum((v - r) ** 2 for v, r in zip(values, returns)) / len(samples)


def test_value_reads_the_last_prompt_token_not_the_completion(policy, prompts):
    learner = PPOLearner(config())
    torch.manual_seed(0)
    torch.nn.init.normal_(learner.critic.value_head_for(policy).weight)
    episodes = played(policy, prompts, [True, True])
    samples = rl_samples(episodes)
    first, other = samples[0], samples[1]
    prompt = len(first.input_ids) - len(first.old_logprobs)
    changed = type(first)(
        first.input_ids[:prompt] + other.input_ids[-len(other.old_logprobs):], [0] * prompt + [1] * len(other.old_logprobs),
        first.trajectory_id, first.step, list(other.old_logprobs), first.episode, decisions=first.decisions,
    )
    values = learner.critic.state_values(policy, [first, changed, other])
    assert first.input_ids != changed.input_ids
    assert values[1] == pytest.approx(values[0], abs=1e-5)
    assert abs(values[2] - values[0]) > 1e-2, values


def test_train_fits_the_value_head_to_the_returns_and_updates_the_adapter(policy, prompts):
    learner = PPOLearner(config(learning_rate=1e-3))  # the value loss trains the adapter too: at 3e-3 it oscillates
    episodes = played(policy, prompts, [True, False, True, False])
    adapter = [parameter.detach().clone() for parameter in policy.trainable_parameters()]
    steps = []
    errors, results = [monte_carlo_error(learner, policy, prompts, episodes)], []
    for _ in range(8):
        results.append(learner.train(policy, episodes, prompts=prompts, on_step=steps.append))
        errors.append(monte_carlo_error(learner, policy, prompts, episodes))
    # 0.5 at the start (V = 0); a value that ignored the state could do no better than 0.25 (V = 0.5 everywhere)
    assert errors[0] == 0.5 and errors[-1] < 0.15, errors
    assert results[-1]["value_loss"] < 0.5 * results[0]["value_loss"], [r["value_loss"] for r in results]
    assert results[0]["value_mean"] == 0.0 and results[0]["explained_variance"] == 0.0
    assert results[-1]["explained_variance"] > 0.2, [r["explained_variance"] for r in results]
    assert set(results[0]) == GRPO_KEYS | {"value_loss", "value_mean", "explained_variance"}
    assert results[0]["samples"] == 16 and "value_loss" in steps[0]
    assert any(not torch.equal(before, after) for before, after in zip(adapter, policy.trainable_parameters()))


def test_saved_state_restores_the_value_head_and_optimizer(policy, prompts, tmp_path):
    learner = PPOLearner(config())
    learner.train(policy, played(policy, prompts, [True, False]), prompts=prompts)
    learner.save_state(tmp_path / "rl_state.pt")
    restored = PPOLearner(config())
    restored.load_state(tmp_path / "rl_state.pt", policy)
    assert torch.equal(restored.critic.value_head.weight, learner.critic.value_head.weight)
    assert torch.equal(restored.critic.value_head.bias, learner.critic.value_head.bias)
    assert learner.critic.value_head.weight.abs().sum() > 0
    moments = [state["exp_avg"] for state in learner._optimizer.state_dict()["state"].values()]
    loaded = [state["exp_avg"] for state in restored._optimizer.state_dict()["state"].values()]
    assert len(loaded) == len(moments) and all(torch.equal(a, b) for a, b in zip(moments, loaded))


def test_state_of_another_learner_is_refused_by_name(policy, prompts, tmp_path):
    grpo = GRPOLearner(config())
    grpo.train(policy, played(policy, prompts, [True, False]), prompts=prompts)
    grpo.save_state(tmp_path / "rl_state.pt")
    with pytest.raises(ValueError, match="no PPO value head"):
        PPOLearner(config()).load_state(tmp_path / "rl_state.pt", policy)


def test_iteration_without_steps_or_tokens_is_a_zero_update(policy, prompts):
    learner = PPOLearner(config())
    adapter = [parameter.detach().clone() for parameter in policy.trainable_parameters()]
    no_steps = played(policy, prompts, [True, False])
    for episode in no_steps:
        episode.steps = []  # every episode failed to start
    no_tokens = played(policy, prompts, [True, False])
    for step in (step for episode in no_tokens for step in episode.steps):
        step.completion_token_ids, step.completion_logprobs = [], []
    for episodes in (no_steps, no_tokens):
        metrics = learner.train(policy, episodes, prompts=prompts)
        assert metrics["steps"] == metrics["samples"] == metrics["tokens_trained"] == 0 and "value_loss" not in metrics
        assert metrics["value_mean"] == metrics["explained_variance"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(adapter, policy.trainable_parameters()))
    assert learner.critic.value_head.weight.abs().sum() == 0


def test_ppo_is_registered_as_an_rl_learner():
    assert LEARNERS.get("ppo") is PPOLearner
    assert PPOLearner.config_class is RLConfig


def test_truncated_episode_bootstraps_from_the_value_of_its_final_state_by_hand(policy, prompts):
    learner = PPOLearner(config(ppo=PPOConfig(gamma=0.9, lam=0.8)))
    torch.nn.init.constant_(learner.critic.value_head_for(policy).bias, 0.5)  # V = 0.5 in every state
    ended, cut = played(policy, prompts, [False, False])
    cut = dataclasses.replace(cut, truncated=True, final_observation="You see a drawer.", final_admissible_actions=["look"])
    estimate = learner.critic.estimate(policy, [ended, cut], rl_samples([ended, cut]), prompts)
    # rewards 0; ended: deltas -0.05, -0.05, -0.05 and 0 + 0.9 * 0 - 0.5 = -0.5 at the end;
    # A3 = -0.5, A2 = -0.05 + 0.72 * A3 = -0.41, A1 = -0.3452, A0 = -0.298544; returns = A + 0.5
    assert estimate.returns[0] == pytest.approx([0.201456, 0.1548, 0.09, 0.0], abs=1e-6)
    # truncated: the last delta is 0 + 0.9 * V(s_T) - 0.5 = -0.05 too: A3 = -0.05, A2 = -0.086, A1 = -0.11192,
    # A0 = -0.1305824
    assert estimate.returns[1] == pytest.approx([0.3694176, 0.38808, 0.414, 0.45], abs=1e-6)
    assert estimate.old_values == [[0.5] * 4] * 2


def test_left_out_zero_advantage_samples_keep_their_tokens_in_the_token_mean(policy, prompts, monkeypatch):
    monkeypatch.setattr("prism_agents.learners.tokens.MAX_PADDING_SHARE", 1.0)  # one batch, whatever its padding
    won, lost = played(policy, prompts, [True, False])
    lost.steps = lost.steps[:2]  # fewer tokens than the won episode, so the signed token sum is not 0
    tied = played(policy, prompts, [True, True])
    tied = [dataclasses.replace(e, task=dataclasses.replace(e.task, task_id="tied")) for e in tied]  # a group of its own
    episodes = [won, lost, *tied]
    tokens = [sum(len(s.completion_token_ids) for s in e.steps) for e in episodes]
    advantage = 0.5 / (math.sqrt(0.5) + 1e-6)  # returns 1 and 0: mean 0.5, sample std sqrt(0.5)
    first_losses = {}
    start = [parameter.detach().clone() for parameter in policy.trainable_parameters()]
    for denominator in ("all_tokens", "trained_tokens"):
        with torch.no_grad():  # both learners start from the same adapter
            for parameter, value in zip(policy.trainable_parameters(), start):
                parameter.copy_(value)
        steps = []
        learner = GRPOLearner(config(batch_tokens=100_000, loss_denominator=denominator))  # one batch
        metrics = learner.train(policy, episodes, prompts=prompts, on_step=steps.append)
        assert metrics["samples"] == 6  # the tied group's 8 steps are left out: advantage 0, no KL
        first_losses[denominator] = steps[0]["policy_loss"]
    # ratio 1 at the first step: loss = -A * (won tokens - lost tokens) / denominator
    signed = -advantage * (tokens[0] - tokens[1])
    assert first_losses["all_tokens"] == pytest.approx(signed / sum(tokens), rel=1e-4)
    assert first_losses["trained_tokens"] == pytest.approx(signed / (tokens[0] + tokens[1]), rel=1e-4)


def test_batch_without_its_zero_advantage_sample_has_the_loss_and_gradient_of_the_whole_batch(policy, prompts):
    learner = GRPOLearner(config())
    samples = rl_samples(played(policy, prompts, [True]))[:2]
    estimate = Estimate([[0.0, 1.5, 0.0, 0.0]])
    total = sum(len(sample.old_logprobs) for sample in samples)

    def loss_and_gradient(batch):
        loss, _ = learner.batch_loss(policy, batch, estimate.advantages, estimate, total)
        gradients = torch.autograd.grad(loss, policy.trainable_parameters())
        return loss.item(), gradients

    whole, left_out = loss_and_gradient(samples), loss_and_gradient(samples[1:])
    assert left_out[0] == pytest.approx(whole[0], rel=1e-5) and whole[0] != 0.0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole[1], left_out[1]))
    assert any(a.abs().max() > 1e-2 for a in whole[1])
