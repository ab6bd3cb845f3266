"""The RL stage inside a run on the ALFWorld fixture games: rollouts, one adapter version per iteration, resume."""

import json

import pytest

from prism_agents.cli import main
from prism_agents.io import read_jsonl
from run_arguments import last_line

RL = ("rl.iterations=2", "router.name=both", "rl.group_size=4", "rl.reward.invalid_action_penalty=0.5")


def test_rl_trains_on_the_rl_share_after_sft_and_saves_a_version_per_iteration(run_args, capsys):
    assert main(run_args(*RL)) == 0
    run = last_line(capsys.readouterr().out)
    iterations = read_jsonl(run / "rl_iterations.jsonl")
    assert [(line["iteration"], line["adapter"], line["played_with"]) for line in iterations] == [
        (1, "adapters/v2", "policy:v1"), (2, "adapters/v3", "policy:v2")
    ]
    for line in iterations:
        assert line["episodes"] == 4 and 1 <= line["mean_steps"] <= 3
        assert {"mean_return", "success_rate", "invalid_action_rate", "approx_kl", "clip_fraction", "samples"} <= set(line)
        assert ("entropy" in line) == (line["samples"] > 0)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rl"]["iterations"] == 2 and summary["rl"]["learner"] == "grpo"
    assert summary["eval"]["policy"] == "adapter v3"
    compute = json.loads((run / "compute.json").read_text())["rl"]
    assert compute["episodes"] == 8 and compute["generated_tokens"] > 0
    assert {line["stage"] for line in read_jsonl(run / "metrics.jsonl")} == {"sft", "rl", "eval"}
    assert "## Reinforcement learning" in (run / "report.md").read_text()


def test_resume_continues_after_the_last_finished_iteration(run_args, capsys):
    assert main(run_args(*RL)) == 0
    run = last_line(capsys.readouterr().out)
    first = read_jsonl(run / "rl_iterations.jsonl")[0]
    # as if the run had stopped during iteration 2: its line, its adapter and the stage record are gone
    (run / "rl_iterations.jsonl").write_text(json.dumps(first) + "\n")
    for path in sorted((run / "adapters" / "v3").iterdir()):
        path.unlink()
    (run / "adapters" / "v3").rmdir()
    stages = json.loads((run / "stages.json").read_text())
    for name in ("rl", "eval"):
        del stages[name]
    (run / "stages.json").write_text(json.dumps(stages))
    assert main(["run", "--resume", str(run)]) == 0
    resumed = read_jsonl(run / "rl_iterations.jsonl")
    assert resumed[0] == first and [line["iteration"] for line in resumed] == [1, 2]
    assert resumed[1]["played_with"] == "policy:v2" and (run / "adapters" / "v3").is_dir()


@pytest.mark.parametrize("override, expected", [("rl.learner=grpo", "grpo"), ("rl.advantage=gigpo", "gigpo")])
def test_learner_and_advantage_are_one_override_each(run_args, capsys, override, expected):
    assert main(run_args("rl.iterations=1", "router.name=all_rl", override)) == 0
    summary = json.loads((last_line(capsys.readouterr().out) / "summary.json").read_text())["rl"]
    assert expected in (summary["learner"], summary["advantage"]) and summary["iterations"] == 1


def test_no_rl_share_skips_rl(run_args, capsys):
    assert main(run_args("rl.iterations=1", "router.name=all_sft")) == 0
    summary = json.loads((last_line(capsys.readouterr().out) / "summary.json").read_text())
    assert summary["rl"] == {"tasks": 0, "iterations": 0, "skipped": "no task was routed to RL"}


def test_task_passes_scale_the_iterations_with_the_rl_share():
    from prism_agents.config.rl import RLConfig
    from prism_agents.pipeline.reinforce import planned_iterations

    fixed = RLConfig(iterations=3, tasks_per_iteration=4)
    assert [planned_iterations(fixed, n) for n in (8, 16)] == [3, 3]
    scaled = RLConfig(iterations=3, tasks_per_iteration=4, task_passes=2.0)
    assert [planned_iterations(scaled, n) for n in (8, 16, 5)] == [4, 8, 3]  # all-RL plays twice a median split
