"""Run folder bookkeeping, atomic writes, metrics and compute records."""

import json

import pytest

from prism_agents.config import load_config
from prism_agents.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from prism_agents.pipeline.compute import ComputeLedger
from prism_agents.pipeline.metrics import MetricsLog
from prism_agents.pipeline.run_folder import RunFolder


@pytest.fixture
def folder(tmp_path):
    return RunFolder.create(load_config(None, [f"output_dir={tmp_path}", "name=unit"]))


def test_create_saves_the_resolved_config_and_open_reads_it_back(folder):
    assert folder.path.name.startswith("unit-")
    assert RunFolder.open(folder.path).config == folder.config


def test_open_rejects_a_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        RunFolder.open(tmp_path)


def test_stage_is_done_only_while_its_outputs_exist(folder):
    write_jsonl_atomic(folder.trajectories, [{"a": 1}])
    assert not folder.stage_done("collect")
    folder.mark_done("collect", [folder.trajectories], {"demonstrations": 1})
    assert folder.stage_done("collect")
    assert folder.stage_result("collect") == {"demonstrations": 1}
    folder.trajectories.unlink()
    assert not folder.stage_done("collect")


def test_latest_adapter_version_ignores_incomplete_folders(folder):
    assert folder.latest_adapter_version() is None
    for version in (1, 2):
        folder.adapter(version).mkdir(parents=True)
        (folder.adapter(version) / "adapter_config.json").write_text("{}")
    folder.adapter(3).mkdir()
    assert folder.latest_adapter_version() == 2


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"k": 1})
    write_jsonl_atomic(tmp_path / "y.jsonl", [{"i": 0}, {"i": 1}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "y.jsonl"]
    assert read_jsonl(tmp_path / "y.jsonl") == [{"i": 0}, {"i": 1}]


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"ok": 1}\n{broken\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_jsonl(path)


def test_metrics_lines_name_stage_and_split(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.log("sft", 1, {"loss": 0.5})
    log.log("eval", 0, {"success_rate": 0.25}, split="eval_out_of_distribution")
    first, second = read_jsonl(tmp_path / "metrics.jsonl")
    assert first["stage"] == "sft" and first["loss"] == 0.5 and "split" not in first
    assert second["split"] == "eval_out_of_distribution"


def test_compute_ledger_keeps_earlier_stages_and_estimates_flops(tmp_path):
    ledger = ComputeLedger(tmp_path / "compute.json")
    with ledger.stage("collect") as spent:
        spent.episodes = 3
    with ledger.stage("sft") as spent:
        spent.model_parameters = 10
        spent.trained_tokens = 100
        spent.prompt_tokens = 5
    totals = json.loads((tmp_path / "compute.json").read_text())
    assert totals["collect"]["episodes"] == 3
    assert totals["sft"]["estimated_flops"] == 10 * (6 * 100 + 2 * 5)
