"""One training sequence per episode: episodes played on the fixture games by the real generators (HF and vLLM,
serving an adapter that is not the base model) are trained on exactly the tokens that were served.

* Identity: at the start of an update the learner's log-prob of every sampled token equals the generator's
  recorded one within the served-adapter check's tolerance.
* Equivalence: one sequence per episode and one per step give the same loss and gradient on the same data
  (GRPO with a KL term, and PPO with its value loss), and the per-episode layout trains fewer tokens.
"""

from __future__ import annotations

import random

import pytest
import torch

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.config.model import LoraConfig
from prism_agents.config.rl import RLConfig
from prism_agents.config.training import PromptConfig
from prism_agents.environments import EnvPool, EnvSpec
from prism_agents.learners.grpo import GRPOLearner
from prism_agents.learners.policy_gradient import Estimate
from prism_agents.learners.ppo import PPOLearner
from prism_agents.learners.rl_samples import rl_samples
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.rollout import play_episodes
from prism_agents.policies.generators import HFGenerator
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder

SAMPLED = SamplingConfig(max_new_tokens=6, temperature=1.0)
TOLERANCE = GeneratorConfig().check_tolerance


@pytest.fixture(scope="module")
def trained(model_config, tmp_path_factory):
    """A policy whose adapter moved away from the base model (B drawn at random), and its saved folder."""
    policy = Policy.load(model_config, LoraConfig(rank=8))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in policy.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return policy, policy.save_adapter(tmp_path_factory.mktemp("adapter") / "v1")


def served_generator(name: str, model_config, trained):
    policy, adapter = trained
    if name == "hf":
        generator = HFGenerator(GeneratorConfig(name="hf", hf_device="cpu"), model_config.name)
    else:
        from prism_agents.policies.generators.vllm import VLLMGenerator

        config = GeneratorConfig(name="vllm", kv_cache_gib=1, max_model_len=1024, max_lora_rank=16, adapter_serving="merged")
        generator = VLLMGenerator(config, model_config.name)
    generator.load_adapter(adapter, 1, reference=policy)  # raises unless the engine serves the policy's weights
    return generator


@pytest.fixture(scope="module", params=["hf", "vllm"])
def played(request, model_config, trained, alfworld_fixture_root):
    """Six sampled full-history episodes of at most 4 steps, played by ``generator`` through the env workers."""
    policy, _ = trained
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="full", max_admissible_actions=0), "alfworld")
    spec = EnvSpec(EnvironmentConfig(data_path=str(alfworld_fixture_root), num_workers=2, max_steps=4), "train")
    tasks = [task for task in spec.tasks() for _ in range(3)]
    with served_generator(request.param, model_config, trained) as generator, EnvPool(spec, num_slots=3) as pool:
        generator.reseed(11)
        episodes = play_episodes(pool, generator, prompts, tasks, SAMPLED, "policy:v1", StageCompute(), max_prompt_tokens=900)
    assert sum(len(episode.steps) for episode in episodes) > len(episodes)  # several steps per episode
    return episodes, prompts


def one_batch(monkeypatch):
    """Every sample in one batch, whatever its padding (so both layouts see the same token-mean denominator)."""
    monkeypatch.setattr("prism_agents.learners.tokens.MAX_PADDING_SHARE", 1.0)


def advantages_of(episodes, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.uniform(-1.0, 1.0) for _ in episode.steps] for episode in episodes]


def test_learner_logprobs_at_the_start_of_an_update_are_the_generators(played, trained, monkeypatch):
    episodes, _ = played
    policy, _ = trained
    one_batch(monkeypatch)
    learner = GRPOLearner(RLConfig(batch_tokens=1_000_000))
    for layout in ("episode", "step"):
        samples = rl_samples(episodes, layout)
        tokens = sum(len(sample.old_logprobs) for sample in samples)
        assert tokens == sum(len(step.completion_token_ids) for episode in episodes for step in episode.steps)
        _, values = learner.batch_loss(policy, samples, advantages_of(episodes), Estimate(advantages_of(episodes)), tokens)
        assert values["logprob_gap_max"] <= TOLERANCE, (layout, values["logprob_gap_max"])
    assert len(rl_samples(episodes, "episode")) == len(episodes)  # full history: one sequence per episode


def loss_and_gradients(learner, policy, samples, advantages, estimate):
    tokens = sum(len(sample.old_logprobs) for sample in samples)
    loss, values = learner.batch_loss(policy, samples, advantages, estimate, tokens)
    parameters = [p for group in learner._optimizer_for(policy).param_groups for p in group["params"]]
    return loss.item(), torch.autograd.grad(loss, parameters, allow_unused=True), values


@pytest.mark.parametrize("name", ["grpo", "ppo"])
def test_per_episode_and_per_step_sequences_give_the_same_loss_and_gradient(played, trained, monkeypatch, name):
    episodes, prompts = played
    policy, _ = trained
    one_batch(monkeypatch)
    config = RLConfig(batch_tokens=1_000_000, kl_coef=0.1 if name == "grpo" else 0.0)
    learner = GRPOLearner(config) if name == "grpo" else PPOLearner(config)
    if name == "ppo":
        torch.nn.init.normal_(learner.critic.value_head_for(policy).weight, std=0.1, generator=torch.Generator().manual_seed(3))
    results = {}
    for layout in ("episode", "step"):
        samples = rl_samples(episodes, layout)
        if name == "ppo":
            estimate = learner.estimator.estimate(policy, episodes, samples, prompts)
        else:
            estimate = Estimate(advantages_of(episodes))
        results[layout] = (estimate, *loss_and_gradients(learner, policy, samples, estimate.advantages, estimate))
    (per_episode, episode_loss, episode_grads, episode_values) = results["episode"]
    (per_step, step_loss, step_grads, step_values) = results["step"]
    flat = [[a for row in estimate.advantages for a in row] for estimate in (per_episode, per_step)]
    assert flat[0] == pytest.approx(flat[1], abs=1e-5)
    assert episode_loss == pytest.approx(step_loss, rel=1e-4, abs=1e-6) and episode_loss != 0.0
    for a, b in zip(episode_grads, step_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-6), (a - b).abs().max()
    assert any(a is not None and a.abs().max() > 1e-4 for a in episode_grads)
    assert episode_values["kl"] == pytest.approx(step_values["kl"], rel=1e-4, abs=1e-7)
    if name == "ppo":
        assert episode_values["value_loss"] == pytest.approx(step_values["value_loss"], rel=1e-4)
    episode_tokens = sum(len(sample.input_ids) for sample in rl_samples(episodes, "episode"))
    step_tokens = sum(len(sample.input_ids) for sample in rl_samples(episodes, "step"))
    assert episode_tokens == sum(episode.steps[-1].prompt_tokens + len(episode.steps[-1].completion_token_ids)
                                 for episode in episodes if episode.steps)
    assert episode_tokens < step_tokens
