"""`prism-agents compare` on the fixture games with the tiny random-weight model: every variant runs,
stages are shared where their inputs match, the report, tables and plot are written, and a rerun of a
finished comparison trains nothing and rebuilds the same report."""

import json
import re
from pathlib import Path

import matplotlib.image
import pytest
import yaml

from prism_agents.cli import main
from prism_agents.comparison.plot import pareto_figure, pareto_front
from prism_agents.io import read_jsonl
from prism_agents.reporting.figures import plt
from prism_agents.reporting.intervals import wilson_interval
from prism_agents.routers.baselines import seeded_uniform
from prism_agents.routers.split import split_by_share
from run_arguments import arguments, last_line

VARIANTS = {
    "prism-gini": ["router.name=prism", "router.probe.metric=gini"],
    "random": ["router.name=random"],
    "all-sft": ["router.name=all_sft"],
    "all-rl": ["router.name=all_rl"],
    "sft-then-rl": ["router.name=both"],
}


def write_ablation(tmp_path: Path, tiny_model: Path, data: Path, **settings) -> Path:
    experiment, *overrides = arguments(tmp_path, tiny_model, data, "rl.iterations=1")
    ablation = {
        "name": "tiny-routers",
        "experiment": experiment,
        "output_dir": str(tmp_path / "compare"),
        "overrides": [item for item in overrides if not item.startswith("output_dir=")],
        "variants": VARIANTS,
        **settings,
    }
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(ablation, sort_keys=False))
    return path


def outputs_of(folder: Path) -> dict[str, int]:
    """Modification time of every file the runs wrote (a rerun that trains or evaluates changes some)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in (folder / "runs").rglob("*") if p.is_file()}


def test_compare_runs_the_variants_shares_stages_and_a_rerun_only_rebuilds_the_report(
    tmp_path, tiny_model, alfworld_fixture_root, capsys
):
    ablation = write_ablation(
        tmp_path, tiny_model, alfworld_fixture_root,
        eval_splits=["eval_in_distribution", "train"], baseline="all-rl",
    )
    assert main(["compare", str(ablation)]) == 0
    folder = last_line(capsys.readouterr().out)
    assert folder == tmp_path / "compare" / "tiny-routers"
    runs = folder / "runs"

    results = json.loads((folder / "results.json").read_text())
    assert list(results["variants"]) == list(VARIANTS)
    shares = {name: (entry["routing"]["sft_share"], entry["routing"]["rl_share"]) for name, entry in results["variants"].items()}
    assert shares == {"prism-gini": (0.5, 0.5), "random": (0.5, 0.5), "all-sft": (1.0, 0.0),
                      "all-rl": (0.0, 1.0), "sft-then-rl": (1.0, 1.0)}
    random_routing = read_jsonl(runs / "random-seed0" / "routing.jsonl")  # the random router's own seeded draws
    scores = [line["score"] for line in random_routing]
    assert scores == [seeded_uniform(0, line["trajectory_id"]) for line in random_routing]
    assert [line["destination"] for line in random_routing] == split_by_share(scores, 0.5)
    for entry in results["variants"].values():
        assert set(entry["evaluation"]) == {"eval_in_distribution", "train"}
        assert entry["evaluation"]["eval_in_distribution"]["episodes_per_seed"] == [1]
        assert entry["evaluation"]["train"]["episodes_per_seed"] == [2]
        assert entry["evaluation"]["train"]["success_rate"]["sd"] is None  # one seed: no spread
    assert results["variants"]["all-rl"]["compute"]["speedup_wall_clock"] == 1.0
    assert results["variants"]["all-sft"]["compute"]["generated_tokens"] == 0  # no RL rollouts

    # Shared stages: one collect, and all-sft and sft-then-rl train one SFT adapter (both take every demonstration).
    stages = {name: json.loads((runs / f"{name}-seed0" / "stages.json").read_text()) for name in VARIANTS}
    assert "shared_from" not in stages["prism-gini"]["collect"]
    assert {stages[name]["collect"]["shared_from"] for name in VARIANTS if name != "prism-gini"} == {"prism-gini-seed0"}
    assert stages["sft-then-rl"]["sft"]["shared_from"] == "all-sft-seed0"
    shared_adapter = runs / "sft-then-rl-seed0" / "adapters" / "v1" / "adapter_model.safetensors"
    assert shared_adapter.read_bytes() == (runs / "all-sft-seed0" / "adapters" / "v1" / "adapter_model.safetensors").read_bytes()
    compute = json.loads((runs / "sft-then-rl-seed0" / "compute.json").read_text())
    assert compute["sft"]["shared_from"] == "all-sft-seed0" and compute["sft"]["trained_tokens"] > 0
    assert (runs / "sft-then-rl-seed0" / "adapters" / "v2").is_dir()  # its own RL on top of the shared SFT

    # The further split evaluates each variant's final adapter in its own run folder.
    extra = runs / "sft-then-rl-seed0-train"
    assert (extra / "adapters" / "v1" / "adapter_model.safetensors").read_bytes() == (
        runs / "sft-then-rl-seed0" / "adapters" / "v2" / "adapter_model.safetensors"
    ).read_bytes()
    assert json.loads((extra / "summary.json").read_text())["eval"]["split"] == "train"

    report = (folder / "report.md").read_text()
    for heading in ("## Evaluation on `eval_in_distribution`", "## Evaluation on `train`", "## SFT : RL split", "## Compute",
                    "![success rate against training compute](pareto.png)"):
        assert heading in report
    for name in VARIANTS:
        assert f"| {name} |" in report and f"(runs/{name}-seed0/report.md)" in report
    assert "| sft-then-rl | `both` | 2 | 0 | 0 | 2 | 100 : 100 |" in report
    for name in VARIANTS:  # one seed: each success rate with its interval, the score without
        assert re.search(rf"\| {name} \| \d+\.\d\d \[\d+\.\d, \d+\.\d\] \| \d+\.\d\d \|", report), name
    assert "## Per seed" not in report
    image = matplotlib.image.imread(folder / "pareto.png")
    assert image.shape[0] > 300 and image.shape[1] > 600
    figure = pareto_figure(results)
    for panel in figure.axes:  # each point's error bar spans its 95 % Wilson interval
        (bars,) = panel.containers
        spans = [tuple(segment[:, 1]) for segment in bars.lines[2][0].get_segments()]
        pooled = [results["variants"][name]["evaluation"]["eval_in_distribution"]["pooled_success"] for name in VARIANTS]
        assert spans == [pytest.approx((100 * p["success_interval"]["low"], 100 * p["success_interval"]["high"])) for p in pooled]
        assert panel.get_ylim() == (0.0, 100.0)
    plt.close(figure)

    before = outputs_of(folder)
    built = {name: (folder / name).read_bytes() for name in ("report.md", "results.json", "pareto.png")}
    assert main(["compare", str(ablation)]) == 0
    capsys.readouterr()
    assert outputs_of(folder) == before, "a rerun of a finished comparison touched a run folder"
    for name, content in built.items():
        assert (folder / name).read_bytes() == content, f"{name} changed on rebuild"

    moved = tmp_path / "moved"
    folder.rename(moved)  # `prism-agents report` rebuilds a comparison folder wherever it is now
    (moved / "report.md").unlink()
    assert main(["report", str(moved)]) == 0
    printed = capsys.readouterr().out
    assert "sft-then-rl: success rate" in printed and last_line(printed) == moved
    assert re.search(r"sft-then-rl: success rate \d+\.\d\d % \[\d+\.\d, \d+\.\d\], ", printed)
    assert (moved / "report.md").read_bytes() == built["report.md"]


def test_compare_over_seeds_reports_mean_and_spread(tmp_path, tiny_model, alfworld_fixture_root, capsys):
    ablation = write_ablation(tmp_path, tiny_model, alfworld_fixture_root, seeds=[0, 1], eval_splits=["train"])
    settings = yaml.safe_load(ablation.read_text())
    settings["variants"] = {"random": VARIANTS["random"], "all-sft": VARIANTS["all-sft"]}
    ablation.write_text(yaml.safe_dump(settings))
    assert main(["compare", str(ablation)]) == 0
    printed = capsys.readouterr().out
    folder = last_line(printed)
    results = json.loads((folder / "results.json").read_text())
    for entry in results["variants"].values():
        assert entry["runs"][1].endswith("-seed1")
        success = entry["evaluation"]["train"]["success_rate"]
        assert len(success["values"]) == 2 and success["sd"] is not None
        for run, record in zip(entry["runs"], entry["evaluation"]["train"]["success_intervals"]):
            evaluation = json.loads((folder / "runs" / run / "summary.json").read_text())["eval"]
            expected = wilson_interval(evaluation["successes"], evaluation["episodes"])
            assert (record["low"], record["high"], record["episodes"]) == (expected.low, expected.high, 2)
    report = (folder / "report.md").read_text()
    assert "mean over the 2 seed(s), ± the sample standard deviation" in report
    assert "## Per seed" in report
    for name in ("random", "all-sft"):
        for seed in (0, 1):  # each seed's rate with its interval, beside its score and task types
            assert re.search(rf"\| {name} \| {seed} \| 2 \| \d+\.\d\d \[\d+\.\d, \d+\.\d\] \| \d+\.\d\d \|", report)
        assert re.search(rf"{name}: success rate .* \(seed 0: \d+\.\d\d \[[^]]+\], seed 1: \d+\.\d\d \[[^]]+\]\)", printed)
    configs = [yaml.safe_load((folder / "runs" / f"random-seed{seed}" / "config.yaml").read_text()) for seed in (0, 1)]
    assert [(c["seed"], c["router"]["seed"], c["sft"]["seed"], c["generator"]["seed"]) for c in configs] == [(0, 0, 0, 0), (1, 1, 1, 1)]


def test_a_base_model_variant_is_evaluated_without_routing_or_training(
    tmp_path, tiny_model, alfworld_fixture_root, capsys
):
    ablation = write_ablation(
        tmp_path, tiny_model, alfworld_fixture_root, eval_splits=["eval_in_distribution", "train"], baseline="base"
    )
    settings = yaml.safe_load(ablation.read_text())
    settings["variants"] = {"base": ["eval.policy=base"], "all-sft": VARIANTS["all-sft"]}
    ablation.write_text(yaml.safe_dump(settings))
    assert main(["compare", str(ablation)]) == 0
    folder = last_line(capsys.readouterr().out)
    base, trained = (json.loads((folder / "results.json").read_text())["variants"][name] for name in ("base", "all-sft"))
    assert base["routing"] is None and trained["routing"]["sft_share"] == 1.0
    assert base["evaluation"]["train"]["episodes_per_seed"] == [2]
    assert base["evaluation"]["train"]["policy"] == ["base model (no adapter)"]
    assert base["compute"]["stages_run"] == ["eval", "report"] and base["compute"]["training_wall_clock_s"] == 0.0
    assert base["compute"]["stage_wall_clock_s"]["eval"] > 0
    assert base["compute"]["speedup_wall_clock"] is None and trained["compute"]["speedup_flops"] is None
    report = (folder / "report.md").read_text()
    assert "| base | - | - | - | - | - | - |" in report and "| all-sft | `all_sft` |" in report


def test_changed_variant_is_refused_naming_the_variant_and_key(tmp_path, tiny_model, alfworld_fixture_root, capsys):
    ablation = write_ablation(tmp_path, tiny_model, alfworld_fixture_root, eval_splits=["train"])
    settings = yaml.safe_load(ablation.read_text())
    settings["variants"] = {"all-sft": VARIANTS["all-sft"]}
    ablation.write_text(yaml.safe_dump(settings))
    run = tmp_path / "compare" / "tiny-routers" / "runs" / "all-sft-seed0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("sft:\n  epochs: 7\n")
    assert main(["compare", str(ablation)]) == 2
    error = capsys.readouterr().err
    assert "variant 'all-sft'" in error and "sft.epochs" in error and "delete that run folder" in error


@pytest.mark.parametrize(
    "change, message",
    [
        ({"variant": {}}, "variant"),
        ({"variants": {"odd": ["router.nmae=random"]}}, "variant 'odd' (seed 0)"),
        ({"variants": {"odd": ["seed=3"]}}, "seeds come from the ablation's seeds list"),
        ({"baseline": "none-such"}, "baseline: 'none-such' is not a variant"),
        ({"seeds": []}, "seeds: give one or more distinct seeds"),
        ({"experiment": "missing.yaml"}, "config file not found"),
        ({"eval_splits": ["eval_out_of_distribution"]}, "valid_unseen, which is missing"),
    ],
)
def test_bad_ablation_is_a_config_error_naming_the_key(tmp_path, tiny_model, alfworld_fixture_root, capsys, change, message):
    ablation = write_ablation(tmp_path, tiny_model, alfworld_fixture_root)
    settings = yaml.safe_load(ablation.read_text()) | change
    ablation.write_text(yaml.safe_dump(settings))
    assert main(["compare", str(ablation)]) == 2
    error = capsys.readouterr().err
    assert message in error and (str(ablation) in error or "ALFWorld data" in error)
    assert not (tmp_path / "compare").exists(), "nothing may be written before the ablation is checked"


def test_pareto_front_keeps_the_points_nothing_beats():
    points = [(1.0, 10.0), (2.0, 30.0), (3.0, 20.0), (4.0, 30.0), (0.5, 5.0)]
    assert pareto_front(points) == [4, 0, 1]
