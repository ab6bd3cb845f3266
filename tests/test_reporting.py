"""Every success rate a run reports carries its 95 % Wilson interval: in the evaluation's summary (per split
and per task type), ``report.md``, the CLI headline, the comparison's per-seed results and the training
curves; scores stay means. Summaries written before intervals were recorded report them all the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection

from prism_agents.cli import main
from prism_agents.comparison.results import _evaluation
from prism_agents.config import load_config
from prism_agents.io import write_jsonl_atomic
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.evaluation import summarize_episodes
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.reporting.curves import training_figure
from prism_agents.reporting.figures import plt
from prism_agents.reporting.intervals import wilson_interval
from prism_agents.reporting.rates import interval_record, percent_text, record_interval, summary_with_intervals
from prism_agents.reporting.report import eval_headline, render_report
from prism_agents.types import Task, Trajectory

EXPERIMENT = Path(__file__).parents[1] / "experiments" / "alfworld.yaml"


def episode(task_type: str, index: int, won: bool, score: float | None = None) -> Trajectory:
    task = Task(env="alfworld", split="eval_out_of_distribution", index=index, task_id=f"{task_type}/{index}", task_type=task_type)
    return Trajectory(f"policy:{index}", task, "goal", "room", [], won, float(won) if score is None else score, "policy:v1")


def old_eval_record(**counts: tuple[int, int]) -> dict:
    """An evaluation result as runs recorded it before intervals: counts and rates only."""

    def rates(successes: int, episodes: int) -> dict:
        rate = successes / episodes
        return {"episodes": episodes, "successes": successes, "success_rate": rate, "mean_score": rate,
                "mean_steps": 10.0, "failed_episodes": 0}

    total = tuple(map(sum, zip(*counts.values())))
    return {"split": "eval_out_of_distribution", **rates(*total),
            "per_task_type": {name: rates(*count) for name, count in counts.items()},
            "policy": "adapter v2", "max_steps": 20, "decoding": "greedy"}


def test_summarize_episodes_gives_every_rate_its_wilson_interval_as_numbers():
    episodes = [episode("pick", i, won=i < 3) for i in range(4)] + [episode("clean", 4 + i, won=False) for i in range(2)]
    summary = json.loads(json.dumps(summarize_episodes(episodes, "eval_out_of_distribution")))
    expected = wilson_interval(3, 6)
    assert summary["success_interval"] == {"successes": 3, "episodes": 6, "low": expected.low, "high": expected.high,
                                           "confidence": 0.95, "method": "wilson"}
    # 3 of 6: center 0.5, half-width z / (1 + z^2/6) * sqrt(0.25/6 + z^2/144) = 0.312384
    assert summary["success_interval"]["low"] == pytest.approx(0.187616, abs=1e-6)
    assert summary["success_interval"]["high"] == pytest.approx(0.812384, abs=1e-6)
    pick, clean = summary["per_task_type"]["pick"], summary["per_task_type"]["clean"]
    assert (pick["success_interval"]["episodes"], pick["success_interval"]["low"]) == (4, wilson_interval(3, 4).low)
    assert clean["success_interval"]["low"] == 0.0 and clean["success_interval"]["high"] == wilson_interval(0, 2).high
    assert not any(key.startswith("score_") or "score_interval" in key for key in summary)  # a score is a mean


def test_an_old_summary_gains_the_intervals_a_new_one_records():
    episodes = [episode("pick", i, won=i < 8) for i in range(24)] + [episode("look", 24 + i, won=i < 6) for i in range(41)]
    new = summarize_episodes(episodes, "eval_out_of_distribution")
    old = {"run": "r", "eval": old_eval_record(pick=(8, 24), look=(6, 41)),
           "rl": {"iterations": 2, "episodes_per_iteration": 8, "first_iteration_success_rate": 0.0,
                  "last_iteration_success_rate": 0.375}}
    completed = summary_with_intervals(old)
    assert completed["eval"]["success_interval"] == new["success_interval"]
    assert {t: row["success_interval"] for t, row in completed["eval"]["per_task_type"].items()} == {
        t: row["success_interval"] for t, row in new["per_task_type"].items()
    }
    assert completed["rl"]["last_iteration_success_interval"]["successes"] == 3
    assert completed["rl"]["last_iteration_success_interval"]["high"] == wilson_interval(3, 8).high
    assert completed["rl"]["first_iteration_success_interval"]["low"] == 0.0
    assert "success_interval" not in old["eval"], "the summary passed in is left as it was"
    assert summary_with_intervals(completed) == completed


def test_report_and_headline_put_the_interval_beside_each_rate():
    # 14 of 65: 21.54 % [13.3, 33.0], the README's held-out figure after RL.
    summary = {"run": "r", "model": "m", "environment": "alfworld", "seed": 0, "eval": old_eval_record(pick=(8, 24), look=(6, 41)),
               "rl": {"learner": "grpo", "advantage": "grpo", "split": "train", "tasks": 16, "iterations": 10,
                      "episodes_per_iteration": 8, "first_iteration_success_rate": 0.0,
                      "last_iteration_success_rate": 0.375, "adapter": "adapters/v11"}}
    report = render_report(summary, {})
    assert "| task type | episodes | successes | success rate (%) | score (mean x100) |" in report
    assert "| pick | 24 | 8 | 33.33 [18.0, 53.3] | 33.33 |" in report
    assert "| look | 41 | 6 | 14.63 [6.9, 28.4] | 14.63 |" in report
    assert "| **all** | 65 | 14 | 21.54 [13.3, 33.0] | 21.54 |" in report
    assert "95 % Wilson interval, 8 episodes]: 0.00 % [0.0, 32.4] in the first, 37.50 % [13.7, 69.4] in the last" in report
    assert eval_headline(summary["eval"]) == (
        "eval (eval_out_of_distribution split, 65 episodes, adapter v2): success rate 21.54 % [13.3, 33.0] "
        "(14/65, 95 % Wilson interval), score 21.54 (mean benchmark score x100)"
    )


def test_a_webshop_score_is_a_mean_beside_the_rate_without_an_interval():
    evaluation = old_eval_record(fashion=(1, 3))
    evaluation["mean_score"] = evaluation["per_task_type"]["fashion"]["mean_score"] = 0.55
    report = render_report({"run": "r", "model": "m", "environment": "webshop", "seed": 0, "eval": evaluation}, {})
    assert "| fashion | 3 | 1 | 33.33 [6.1, 79.2] | 55.00 |" in report
    assert eval_headline(evaluation).endswith("success rate 33.33 % [6.1, 79.2] (1/3, 95 % Wilson interval), "
                                              "score 55.00 (mean benchmark score x100)")


def test_report_rebuilds_an_old_run_folder_with_intervals(tmp_path, capsys):
    folder = RunFolder.create(load_config(EXPERIMENT, [f"output_dir={tmp_path}"]), tmp_path / "old-run")
    write_jsonl_atomic(folder.evaluation, [])
    folder.mark_done("eval", [folder.evaluation], old_eval_record(pick=(1, 16)), StageCompute())
    assert main(["report", str(folder.path)]) == 0
    assert "report:" in capsys.readouterr().out
    assert "| **all** | 16 | 1 | 6.25 [1.1, 28.3] | 6.25 |" in folder.report.read_text()


def write_metrics(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_training_curves_of_one_iteration_use_a_fixed_percent_axis_and_whole_iterations(tmp_path):
    metrics = write_metrics(tmp_path / "metrics.jsonl", [
        {"stage": "sft", "step": 1, "split": "train", "loss": 1.5},
        {"stage": "sft", "step": 2, "split": "train", "loss": 0.5},
        {"stage": "rl", "step": 1, "split": "train", "episodes": 8.0, "success_rate": 0.375, "mean_score": 0.375},
    ])
    figure = training_figure(metrics)
    loss, success, score = figure.axes
    assert [tick for tick in success.get_xticks() if success.get_xlim()[0] <= tick <= success.get_xlim()[1]] == [1.0]
    assert success.get_ylim() == score.get_ylim() == (0.0, 100.0)
    assert loss.get_ylim() != (0.0, 100.0)  # a loss is no percentage
    (bar,) = success.containers  # one iteration: an error bar, not a band
    low, high = bar.lines[2][0].get_segments()[0][:, 1]
    interval = wilson_interval(3, 8)
    assert (low, high) == pytest.approx((100 * interval.low, 100 * interval.high))
    assert not score.containers and not score.collections  # the score panel has no interval
    plt.close(figure)


def test_training_curves_draw_each_iteration_s_interval_as_a_band(tmp_path):
    wins = [0, 1, 3, 8]
    metrics = write_metrics(tmp_path / "metrics.jsonl", [
        {"stage": "rl", "step": i + 1, "split": "train", "episodes": 8.0, "success_rate": k / 8, "mean_score": k / 8}
        for i, k in enumerate(wins)
    ])
    figure = training_figure(metrics)
    success = figure.axes[0]
    (band,) = [c for c in success.collections if isinstance(c, PolyCollection)]
    vertices = band.get_paths()[0].vertices
    for step, k in enumerate(wins, start=1):
        at_step = sorted(y for x, y in vertices if x == step)
        assert at_step[0] == pytest.approx(100 * wilson_interval(k, 8).low)
        assert at_step[-1] == pytest.approx(100 * wilson_interval(k, 8).high)
    assert all(float(tick).is_integer() for tick in success.get_xticks())
    assert success.get_ylim() == (0.0, 100.0)
    plt.close(figure)


def test_comparison_results_give_each_seed_its_interval_from_old_records(tmp_path):
    runs = []
    for seed, counts in enumerate([{"pick": (1, 2), "clean": (0, 2)}, {"pick": (2, 4)}]):
        folder = RunFolder.create(load_config(EXPERIMENT, [f"output_dir={tmp_path}"]), tmp_path / f"v-seed{seed}")
        write_jsonl_atomic(folder.evaluation, [])
        folder.mark_done("eval", [folder.evaluation], old_eval_record(**counts), StageCompute())
        runs.append(folder)
    evaluation = _evaluation(runs)
    assert [i["successes"] for i in evaluation["success_intervals"]] == [1, 2]
    assert [i["high"] for i in evaluation["success_intervals"]] == [wilson_interval(1, 4).high, wilson_interval(2, 4).high]
    assert evaluation["success_rate"]["values"] == [0.25, 0.5]  # mean, sd and per-seed values as before
    assert evaluation["pooled_success"]["success_interval"]["low"] == wilson_interval(3, 8).low
    clean = evaluation["per_task_type"]["clean"]
    assert clean["success_intervals"][1] is None and clean["success_intervals"][0]["episodes"] == 2
    assert clean["success_rate"]["values"] == [0.0]


def test_an_interval_record_round_trips_and_no_episodes_have_no_interval():
    interval = wilson_interval(5, 16)
    assert record_interval(json.loads(json.dumps(interval_record(interval)))) == interval
    assert percent_text(interval, " %") == "31.25 % [14.2, 55.6]"
    empty = summarize_episodes([], "train")
    assert empty["success_interval"] is None and percent_text(record_interval(empty["success_interval"])) == "-"
