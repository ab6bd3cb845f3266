"""The command line: listing environments and refusing bad invocations clearly."""

from prism_agents.cli import main


def test_envs_lists_the_builtin_environments(capsys):
    assert main(["envs"]) == 0
    assert capsys.readouterr().out.startswith("alfworld")


def test_resume_of_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "config.yaml is missing" in capsys.readouterr().err


def test_resume_takes_no_config_or_overrides(tmp_path, capsys):
    assert main(["run", "experiments/alfworld.yaml", "--resume", str(tmp_path)]) == 2
    assert "--resume takes the run folder only" in capsys.readouterr().err
