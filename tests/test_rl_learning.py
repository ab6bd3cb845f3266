"""RL learns: on a one-step toy task a tiny random model's success rises well above where it started; and a
plug-in RL learner that writes only ``train()`` runs through the RL stage.

Runs the real pipeline (`prism-agents run`): the expert's demonstrations are
routed to RL, the RL stage plays groups of sampled episodes through the
environment workers and the HF generator, updates the LoRA adapter and saves a
version per iteration; the success rate of the first iteration (the starting
policy) is compared with the last one's.
"""

import json

import pytest
import torch

from prism_agents.cli import main
from prism_agents.config.rl import RLConfig
from prism_agents.io import read_jsonl
from prism_agents.learners import Learner
from prism_agents.learners.rl_samples import rl_samples
from prism_agents.learners.tokens import action_token_loss, collate
from run_arguments import EXPERIMENT, last_line

TOY = [
    "environment.name=rl_toy_env:FirstLetterEnv",
    "environment.max_steps=1",
    "environment.expert=apple",
    "prompt.template=alfworld",
    "prompt.history=window",
    "collect.num_tasks=0",
    "router.name=all_rl",
    "rl.iterations=8",
    "rl.tasks_per_iteration=4",
    "rl.group_size=8",
    "rl.learning_rate=0.003",
    "rl.epochs=4",
    "rl.batch_tokens=1024",
    "rl.sampling.max_new_tokens=1",
    "rl.reward.win=1.0",
    "eval.num_tasks=0",
    "eval.split=train",
    "generator.name=hf",
]


@pytest.mark.parametrize("learner", ["grpo:grpo", "grpo:gigpo", "ppo:grpo"])
def test_rl_raises_success_on_a_toy_task(tmp_path, tiny_model, capsys, learner):
    name, advantage = learner.split(":")
    arguments = [
        "run", str(EXPERIMENT), f"output_dir={tmp_path / 'runs'}", f"model.name={tiny_model}",
        f"environment.demo_cache_dir={tmp_path / 'demos'}", *TOY, f"rl.learner={name}", f"rl.advantage={advantage}",
    ]
    assert main(arguments) == 0
    run = last_line(capsys.readouterr().out)
    iterations = read_jsonl(run / "rl_iterations.jsonl")
    assert [line["iteration"] for line in iterations] == list(range(1, 9))
    first, last = iterations[0]["success_rate"], iterations[-1]["success_rate"]
    assert last >= min(1.0, first + 0.3), [line["success_rate"] for line in iterations]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rl"]["iterations"] == 8 and summary["eval"]["policy"] == "adapter v8"


class WinnerCloning(Learner):
    """A plug-in RL learner with only ``train()``: one SGD step on the sampled tokens of the won episodes."""

    config_class = RLConfig

    def train(self, policy, data, *, prompts, on_step=None):
        samples = [sample for sample in rl_samples(data) if data[sample.episode].won]
        if not samples:
            return {"tokens_trained": 0, "won_samples": 0}
        ids, attention, mask = collate(samples, policy.tokenizer.pad_token_id, policy.device)
        loss, _ = action_token_loss(policy.model, ids, attention, mask)
        optimizer = torch.optim.SGD(policy.trainable_parameters(), lr=self.config.learning_rate)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"tokens_trained": int(attention.sum()), "won_samples": len(samples)}


def test_plug_in_learner_with_only_train_runs_through_the_rl_stage(tmp_path, tiny_model, capsys):
    overrides = [override for override in TOY if not override.startswith(("rl.iterations=", "rl.group_size="))]
    arguments = [
        "run", str(EXPERIMENT), f"output_dir={tmp_path / 'runs'}", f"model.name={tiny_model}",
        f"environment.demo_cache_dir={tmp_path / 'demos'}", *overrides,
        "rl.iterations=2", "rl.group_size=4", "rl.learner=test_rl_learning:WinnerCloning",
    ]
    assert main(arguments) == 0
    run = last_line(capsys.readouterr().out)
    iterations = read_jsonl(run / "rl_iterations.jsonl")
    assert [(line["iteration"], line["adapter"]) for line in iterations] == [(1, "adapters/v1"), (2, "adapters/v2")]
    assert [line["won_samples"] for line in iterations] == [line["success_rate"] * 16 for line in iterations]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rl"]["learner"] == "test_rl_learning:WinnerCloning" and summary["eval"]["policy"] == "adapter v2"
