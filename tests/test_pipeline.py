"""End to end: `prism-agents run` on the hand-written fixture games with a tiny random-weight model.

The real textworld engine plays the games, the planner expert demonstrates, SFT
trains a real peft adapter, and the HF generator or vLLM (both ways of serving an
adapter) plays the evaluation episodes.
"""

import json

import pytest

from prism_agents.cli import main
from prism_agents.io import read_jsonl
from run_arguments import last_line


def test_run_writes_every_stage_output_and_resume_skips_finished_stages(tmp_path, run_args, capsys):
    assert main(run_args()) == 0
    run = last_line(capsys.readouterr().out)
    for name in ("config.yaml", "trajectories.jsonl", "adapters/v1/adapter_config.json", "evaluation.jsonl",
                 "metrics.jsonl", "summary.json", "report.md", "compute.json", "stages.json"):
        assert (run / name).exists(), name

    summary = json.loads((run / "summary.json").read_text())
    assert summary["collect"]["demonstrations"] == 2 and summary["collect"]["won"] == 2
    evaluation = summary["eval"]
    assert evaluation["split"] == "eval_in_distribution"
    assert evaluation["episodes"] == 1 and evaluation["per_task_type"]["look"]["episodes"] == 1
    assert evaluation["policy"] == "adapter v1"
    assert "eval_in_distribution" in (run / "report.md").read_text()
    stages = {record["stage"] for record in read_jsonl(run / "metrics.jsonl")}
    assert stages == {"sft", "eval"}
    compute = json.loads((run / "compute.json").read_text())
    assert compute["sft"]["trained_tokens"] > 0 and compute["eval"]["generated_tokens"] > 0

    finished = json.loads((run / "stages.json").read_text())
    (run / "evaluation.jsonl").unlink()
    assert main(["run", "--resume", str(run)]) == 0
    assert last_line(capsys.readouterr().out) == run
    resumed = json.loads((run / "stages.json").read_text())
    for stage in ("collect", "sft"):
        assert resumed[stage]["finished_at"] == finished[stage]["finished_at"], f"{stage} ran again"
    assert (run / "evaluation.jsonl").exists()
    assert not (run / "adapters" / "v2").exists()


@pytest.mark.vllm
@pytest.mark.parametrize("serving", ["merged", "lora"])
def test_run_serves_the_trained_adapter_with_vllm(run_args, capsys, serving):
    settings = ("generator.name=vllm", "generator.kv_cache_gib=1", "generator.max_model_len=2048")
    assert main(run_args(*settings, f"generator.adapter_serving={serving}")) == 0
    run = last_line(capsys.readouterr().out)
    evaluation = json.loads((run / "summary.json").read_text())["eval"]
    assert evaluation["policy"] == "adapter v1" and evaluation["episodes"] == 1
    episode = read_jsonl(run / "evaluation.jsonl")[0]
    assert episode["source"] == "policy:v1" and 1 <= len(episode["steps"]) <= 3
    for step in episode["steps"]:  # what an RL learner needs: the sampled tokens and their log-probs
        assert len(step["completion_token_ids"]) == len(step["completion_logprobs"]) >= 1
        assert step["prompt_tokens"] > 0 and all(logprob <= 0 for logprob in step["completion_logprobs"])


def test_base_model_evaluation_skips_training(tmp_path, run_args, capsys):
    assert main(run_args("eval.policy=base")) == 0
    run = last_line(capsys.readouterr().out)
    summary = json.loads((run / "summary.json").read_text())
    assert "sft" not in summary and "collect" not in summary
    assert summary["eval"]["policy"] == "base model (no adapter)"


def test_config_typo_fails_before_any_work(tmp_path, run_args, capsys):
    assert main(run_args("sft.epoch=1")) == 2
    assert "sft.epoch" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_episode_that_outgrows_the_context_ends_as_a_counted_failure(run_args, capsys):
    assert main(run_args("eval.policy=base", "model.max_seq_len=64")) == 0
    run = last_line(capsys.readouterr().out)
    episode = read_jsonl(run / "evaluation.jsonl")[0]
    assert episode["failure"].startswith("context full") and not episode["won"]
    assert json.loads((run / "summary.json").read_text())["eval"]["failed_episodes"] == 1


def test_eval_command_evaluates_a_saved_adapter_and_report_rebuilds_the_report(run_args, capsys):
    assert main(run_args()) == 0
    trained = last_line(capsys.readouterr().out)

    assert main(["eval", "--adapter", str(trained / "adapters" / "v1"), *run_args()[1:]]) == 0
    out = capsys.readouterr().out
    evaluated = last_line(out)
    assert evaluated != trained and (evaluated / "adapters" / "v1" / "adapter_config.json").is_file()
    summary = json.loads((evaluated / "summary.json").read_text())
    assert set(summary) >= {"eval"} and "sft" not in summary and "collect" not in summary
    assert summary["eval"]["policy"] == "adapter v1" and summary["eval"]["split"] == "eval_in_distribution"
    first = read_jsonl(trained / "evaluation.jsonl")[0]
    again = read_jsonl(evaluated / "evaluation.jsonl")[0]
    assert [s["action"] for s in again["steps"]] == [s["action"] for s in first["steps"]]  # same adapter, greedy
    assert "eval (eval_in_distribution split, 1 episodes, adapter v1): success rate" in out

    report = (trained / "report.md").read_text()
    (trained / "report.md").unlink()
    (trained / "summary.json").unlink()
    assert main(["report", str(trained)]) == 0
    assert last_line(capsys.readouterr().out) == trained
    rebuilt = (trained / "report.md").read_text()
    assert set(report.splitlines()) <= set(rebuilt.splitlines())  # plus the report stage's own compute row
    assert main(["report", str(trained)]) == 0
    assert (trained / "report.md").read_text() == rebuilt


def test_eval_command_names_a_folder_that_is_not_an_adapter(tmp_path, run_args, capsys):
    assert main(["eval", "--adapter", str(tmp_path)] + run_args()[1:]) == 2
    assert f"--adapter {tmp_path}: not a peft adapter folder" in capsys.readouterr().err
