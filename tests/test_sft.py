"""The SFT learner: it fits action tokens, touches only the adapter, is reproducible, and its parts
(batching, schedule, config checks) do what they document."""

import random

import pytest
import torch
from tiny_model import sample_trajectory

from prism_agents.config.base import ConfigValueError
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.config.training import PromptConfig, SFTConfig
from prism_agents.learners.sft import SFTLearner, action_token_loss, collate, learning_rate_factor, length_batches
from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder
from prism_agents.registry import LEARNERS


def mean_action_loss(policy, examples):
    ids, attention, mask = collate(examples, policy.tokenizer.pad_token_id, policy.device)
    with torch.no_grad():
        return action_token_loss(policy.model, ids, attention, mask)[0].item()


def train(model_config, history="window", **overrides):
    policy = Policy.load(model_config, LoraConfig(rank=8))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history=history), "alfworld")
    settings = dict(epochs=25, learning_rate=1e-2, warmup_ratio=0.1, batch_tokens=512, progress=False)
    config = SFTConfig(**(settings | overrides))
    steps = []
    metrics = SFTLearner(config).train(policy, [sample_trajectory()], prompts=prompts, on_step=steps.append)
    return policy, prompts, metrics, steps


@pytest.mark.parametrize("history", ["window", "full"])
def test_sft_lowers_the_action_loss_well_below_the_start(model_config, history):
    base = Policy.load(model_config, LoraConfig(rank=8))
    frozen = {name: tensor.clone() for name, tensor in base.model.named_parameters() if "lora_" not in name}
    examples = PromptBuilder(base.tokenizer, PromptConfig(history=history), "alfworld").examples(sample_trajectory())
    before = mean_action_loss(base, examples)
    policy, _, metrics, steps = train(model_config, history)
    after = mean_action_loss(policy, examples)
    assert after < 0.25 * before, (before, after)
    assert metrics["steps"] == len(steps) and metrics["examples"] == len(examples)
    assert set(steps[0]) == {"step", "epoch", "loss", "lr", "grad_norm", "tokens", "action_tokens", "examples"}
    assert all(torch.equal(tensor, frozen[name]) for name, tensor in policy.model.named_parameters() if name in frozen)


def test_same_seed_gives_the_same_adapter(model_config):
    first, _, metrics_a, _ = train(model_config, epochs=3, seed=5)
    second, _, metrics_b, _ = train(model_config, epochs=3, seed=5)
    assert metrics_a["loss_mean"] == metrics_b["loss_mean"]
    assert all(torch.equal(a, b) for a, b in zip(first.trainable_parameters(), second.trainable_parameters()))


def test_length_batches_respect_the_budget_and_cover_every_example_once():
    lengths = [random.Random(1).randint(10, 300) for _ in range(200)]
    batches = length_batches(lengths, 1000, random.Random(0))
    assert sorted(index for batch in batches for index in batch) == list(range(200))
    assert all(len(batch) * max(lengths[index] for index in batch) <= 1000 for batch in batches)
    assert len(length_batches(lengths, 1000, random.Random(9))) == len(batches)
    assert [len(batch) for batch in length_batches([2000, 5], 1000, random.Random(0))] == [1, 1]


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_learning_rate_warms_up_then_follows_its_schedule(schedule):
    factors = [learning_rate_factor(step, 100, 10, schedule) for step in range(100)]
    assert factors[:10] == pytest.approx([(step + 1) / 10 for step in range(10)])
    assert factors[10] == pytest.approx(1.0)
    if schedule == "constant":
        assert factors[-1] == 1.0
    else:
        assert factors[-1] < 0.05 and all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_sft_is_registered_and_checks_its_config():
    assert LEARNERS.get("sft") is SFTLearner
    with pytest.raises(ConfigValueError) as error:
        SFTLearner(SFTConfig(epochs=0))
    assert error.value.field == "epochs"
    with pytest.raises(ConfigValueError) as error:
        SFTLearner(SFTConfig(lr_schedule="step"))
    assert error.value.field == "lr_schedule"


def test_examples_longer_than_the_context_are_cut_at_the_end(model_config):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="full"), "alfworld")
    (whole,) = prompts.examples(sample_trajectory())
    limit = whole.loss_mask.index(1) + 3  # keeps the first action's first tokens, cuts the rest
    assert limit < len(whole.input_ids)
    policy.max_seq_len = limit
    examples, truncated = SFTLearner.prepare_examples(policy, [sample_trajectory()], prompts)
    assert truncated == 1 and len(examples[0].input_ids) == len(examples[0].loss_mask) == limit
    assert examples[0].input_ids == whole.input_ids[:limit]


def test_empty_sft_set_is_an_error(model_config):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(), "alfworld")
    with pytest.raises(ValueError, match="no SFT examples"):
        SFTLearner(SFTConfig(progress=False)).train(policy, [], prompts=prompts)


@pytest.mark.slow
def test_one_sft_step_on_the_embedded_model(tmp_path):
    policy = Policy.load(ModelConfig(device="cpu"), LoraConfig())
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(), "alfworld")
    examples = prompts.examples(sample_trajectory())
    before = mean_action_loss(policy, examples)
    config = SFTConfig(epochs=1, batch_tokens=100_000, learning_rate=1e-3, warmup_ratio=0.0, progress=False)
    metrics = SFTLearner(config).train(policy, [sample_trajectory()], prompts=prompts)
    assert metrics["steps"] == 1 and metrics["action_tokens"] > 0
    assert mean_action_loss(policy, examples) < before
    policy.save_adapter(tmp_path / "v1")
