"""The SFT learner: it fits action tokens, touches only the adapter, is reproducible, and its parts
(batching, schedule, config checks, cutting examples to the context) do what they document."""

import json
import random

import pytest
import torch
from run_arguments import last_line
from tiny_model import sample_trajectory

from prism_agents.cli import main
from prism_agents.config.base import ConfigValueError
from prism_agents.config.model import LoraConfig, ModelConfig
from prism_agents.config.training import PromptConfig, SFTConfig
from prism_agents.learners.sft import SFTLearner, learning_rate_factor
from prism_agents.learners.tokens import action_token_loss, collate, length_batches
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


def supervised_spans(ids, mask):
    """The token ids of each run of supervised (mask 1) tokens, in order."""
    spans, current = [], []
    for token, supervised in zip(ids, mask):
        if supervised:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def system_tokens(prompts):
    ids, _ = prompts.encode(prompts.messages("", [], "", [])[:1], add_generation_prompt=False)
    return ids


def test_long_window_examples_are_cut_from_the_front_keeping_system_prompt_and_action(model_config, caplog):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="window"), "alfworld")
    whole = prompts.examples(sample_trajectory())
    head = system_tokens(prompts)
    action = [supervised_spans(e.input_ids, e.loss_mask)[-1] for e in whole]
    policy.max_seq_len = max(len(e.input_ids) for e in whole) - 10  # the longest example(s) must lose 10 tokens
    long = [i for i, e in enumerate(whole) if len(e.input_ids) > policy.max_seq_len]
    assert long and all(e.input_ids[: len(head)] == head for e in whole)
    with caplog.at_level("WARNING", logger="prism_agents.learners.sft"):
        examples, truncated, dropped = SFTLearner.prepare_examples(policy, [sample_trajectory()], prompts)
    assert (truncated, dropped) == (len(long), 0) and len(examples) == len(whole)
    for index in long:
        cut = examples[index]
        assert len(cut.input_ids) == len(cut.loss_mask) == policy.max_seq_len
        assert cut.input_ids[: len(head)] == head  # the system prompt stays ...
        assert cut.input_ids[-len(whole[index].input_ids) + len(head) + 10 :] == whole[index].input_ids[len(head) + 10 :]
        assert supervised_spans(cut.input_ids, cut.loss_mask) == [action[index]]  # ... and the whole action
    assert "cut from the front" in caplog.text and "model.max_seq_len" in caplog.text


def test_examples_whose_action_does_not_fit_are_dropped_and_counted(model_config):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="window"), "alfworld")
    whole = prompts.examples(sample_trajectory())
    needed = [len(e.input_ids) - e.loss_mask.index(1) for e in whole]  # the action and what follows it
    policy.max_seq_len = sorted(needed)[-1]  # the longest action no longer fits with a token to predict it from
    too_long = sum(n >= policy.max_seq_len for n in needed)
    config = SFTConfig(epochs=1, progress=False)
    metrics = SFTLearner(config).train(policy, [sample_trajectory()], prompts=prompts)
    assert metrics["dropped_examples"] == too_long >= 1
    assert metrics["truncated_examples"] == len(whole) - too_long and metrics["examples"] == len(whole) - too_long
    policy.max_seq_len = 2
    with pytest.raises(ValueError, match=f"no SFT example fits model.max_seq_len=2: all {len(whole)} have"):
        SFTLearner(config).train(policy, [sample_trajectory()], prompts=prompts)


def test_full_history_cut_from_the_front_keeps_only_whole_later_actions(model_config):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="full"), "alfworld")
    (whole,) = prompts.examples(sample_trajectory())
    actions = supervised_spans(whole.input_ids, whole.loss_mask)
    starts = [i for i in range(1, len(whole.loss_mask)) if whole.loss_mask[i] and not whole.loss_mask[i - 1]]
    head = system_tokens(prompts)
    policy.max_seq_len = len(head) + len(whole.input_ids) - starts[2] + 2  # the cut falls inside the second action
    (cut,), truncated, dropped = SFTLearner.prepare_examples(policy, [sample_trajectory()], prompts)
    assert (truncated, dropped) == (1, 0) and len(cut.input_ids) == policy.max_seq_len
    assert cut.input_ids[: len(head)] == head
    assert supervised_spans(cut.input_ids, cut.loss_mask) == actions[2:]  # the cut second action is not trained on


def test_sft_stage_reports_the_cut_and_dropped_examples(run_args, capsys):
    assert main(run_args("router.name=all_sft", "model.max_seq_len=100")) == 0  # every fixture-game prompt is longer
    sft = json.loads((last_line(capsys.readouterr().out) / "summary.json").read_text())["sft"]
    assert sft["truncated_examples"] == sft["examples"] > 0 and sft["dropped_examples"] == 0


def test_empty_sft_set_is_an_error(model_config):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(), "alfworld")
    with pytest.raises(ValueError, match="no SFT examples"):
        SFTLearner(SFTConfig(progress=False)).train(policy, [], prompts=prompts)


@pytest.mark.slow
def test_one_sft_step_on_the_embedded_model(tmp_path):
    policy = Policy.load(ModelConfig(device="cpu"), LoraConfig())
    prompts = PromptBuilder(policy.tokenizer, PromptConfig(history="full"), "alfworld")  # one example: one batch
    examples = prompts.examples(sample_trajectory())
    before = mean_action_loss(policy, examples)
    config = SFTConfig(epochs=1, batch_tokens=100_000, learning_rate=1e-3, warmup_ratio=0.0, progress=False)
    metrics = SFTLearner(config).train(policy, [sample_trajectory()], prompts=prompts)
    assert metrics["steps"] == 1 and metrics["action_tokens"] > 0
    assert mean_action_loss(policy, examples) < before
    policy.save_adapter(tmp_path / "v1")
