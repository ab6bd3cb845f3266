"""The config loader: defaults, YAML, overrides, and errors that name the key and the file."""

import re
from pathlib import Path

import pytest

from prism_agents.comparison import load_ablation
from prism_agents.config import ConfigError, RunConfig, load_config, to_yaml

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_defaults_load_without_a_file():
    config = load_config(None)
    assert isinstance(config, RunConfig)
    assert config.model.name == "smollm2-135m-instruct"


def test_yaml_and_overrides_compose(tmp_path):
    path = write(tmp_path, "name: demo\nsft:\n  epochs: 3\n")
    config = load_config(path, ["sft.epochs=5", "seed=7"])
    assert (config.name, config.sft.epochs, config.seed) == ("demo", 5, 7)


def test_typo_in_override_names_the_key_and_suggests_the_right_one(tmp_path):
    path = write(tmp_path, "name: demo\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, ["sft.epoch=1"])
    assert "sft.epoch" in str(error.value)
    assert "command line" in str(error.value)
    assert "did you mean sft.epochs" in str(error.value)


def test_unknown_key_in_yaml_names_the_file_and_key(tmp_path):
    path = write(tmp_path, "eval:\n  splits: train\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value)
    assert "eval.splits" in str(error.value)


def test_out_of_range_value_names_the_key_path(tmp_path):
    path = write(tmp_path, "eval:\n  num_tasks: -1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "eval.num_tasks" in str(error.value)
    assert str(path) in str(error.value)


def test_missing_file_and_malformed_override_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["seed"])


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["name=roundtrip", "sft.epochs=4"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(config))
    assert load_config(path) == config


@pytest.mark.parametrize(
    "experiment", sorted([*EXPERIMENTS.glob("*.yaml"), *EXPERIMENTS.glob("paper/*.yaml")]), ids=lambda p: p.name
)
def test_shipped_experiments_load(experiment):
    load_config(experiment)


@pytest.mark.parametrize("ablation", sorted(EXPERIMENTS.glob("**/ablations/*.yaml")), ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_shipped_ablations_load_every_variant(ablation):
    loaded = load_ablation(ablation)
    assert len(loaded.runs) == len(loaded.config.variants) * len(loaded.config.seeds)
    assert loaded.config.baseline in loaded.config.variants
    assert ablation.read_text().startswith("# "), "an ablation file opens with a comment saying what it compares"


def test_every_config_field_has_a_docstring():
    import ast
    import inspect

    import prism_agents.config as package

    undocumented = []
    for module_path in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(module_path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ClassDef) and node.name.endswith("Config")):
                continue
            body = node.body
            for index, statement in enumerate(body):
                if isinstance(statement, ast.AnnAssign):
                    following = body[index + 1] if index + 1 < len(body) else None
                    documented = isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant)
                    if not documented:
                        undocumented.append(f"{module_path.name}:{node.name}.{statement.target.id}")
    assert not undocumented, f"config fields without a docstring: {undocumented}"
    assert inspect.getdoc(RunConfig)


def test_a_value_out_of_a_fixed_set_suggests_the_closest_one():
    with pytest.raises(ConfigError, match="rl.advantage: must be one of 'grpo', 'gigpo' \\(got 'gigp'\\) \\(did you mean 'gigpo'\\?\\)"):
        load_config(None, ["rl.advantage=gigp"])


def test_a_wrong_type_on_a_correctly_spelled_key_gets_no_key_suggestion(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "sft:\n  epochs: many\n"))
    assert "sft.epochs" in str(error.value) and "did you mean" not in str(error.value)


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=f"{path}: not UTF-8 text \\(byte 9 .*save the file as UTF-8"):
        load_config(path)


def test_the_config_package_imports_no_component_module():
    import ast

    import prism_agents.config as package

    outside = []
    for module_path in sorted(Path(package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(module_path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            components = [name for name in names if name.startswith("prism_agents.") and not name.startswith("prism_agents.config")]
            outside += [f"{module_path.name}: {name}" for name in components]
    assert not outside, f"prism_agents/config imports components: {outside}"


@pytest.mark.parametrize(
    ("override", "hint"),
    [("environment.webshop.catalog=full", "environment.params"), ("environment.win_reward=5", "rl.reward.win")],
)
def test_a_key_of_an_earlier_release_says_where_it_went(override, hint):
    with pytest.raises(ConfigError, match=rf"unknown key \(.*{re.escape(hint)}"):
        load_config(None, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cluster.backend=slurm", "cluster.backend: must be one of 'local', 'ray'"),
        ("cluster.address=headnode", "cluster.address: must be unset .*'auto', 'host:port' or 'ray://host:port'"),
        ("cluster.env_worker_cpus=0", "cluster.env_worker_cpus: must be positive"),
        ("cluster.learner_workers=0", "cluster.learner_workers: must be at least 1"),
        ("cluster.tensor_parallel_size=2", "cluster.tensor_parallel_size: needs generator_gpus >= tensor_parallel_size"),
        ("cluster.colocate=true", "cluster.colocate: needs generator_gpus and learner_gpus above 0"),
        ("cluster.learner_strategy=fsdp", "unknown key"),
    ],
)
def test_bad_cluster_values_fail_before_any_work(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_colocated_gpus_must_fit_one_gpu():
    overrides = ["cluster.backend=ray", "cluster.local_gpus=1", "cluster.colocate=true", "cluster.generator_gpus=0.6", "cluster.learner_gpus=0.6"]
    with pytest.raises(ConfigError, match=r"cluster.colocate: needs generator_gpus \+ learner_gpus <= 1"):
        load_config(None, overrides)
    config = load_config(None, [*overrides[:3], "cluster.generator_gpus=0.5", "cluster.learner_gpus=0.5"])
    assert config.cluster.uses_ray and config.cluster.colocate
    with pytest.raises(ConfigError, match="cluster.colocate: shares one GPU between one engine and one learner worker"):
        load_config(None, [*overrides[:3], "cluster.local_gpus=2", "cluster.generator_gpus=0.5", "cluster.learner_gpus=0.5", "cluster.learner_workers=2"])


def test_the_local_backend_is_the_default():
    assert load_config(None).cluster.backend == "local"


def test_actors_that_a_private_ray_cannot_place_are_refused_before_any_work():
    with pytest.raises(ConfigError, match=r"cluster.local_cpus: is 2, fewer than the actors reserve together .* = 3\)"):
        load_config(None, ["cluster.backend=ray", "cluster.env_workers=4"])
    with pytest.raises(ConfigError, match="cluster.local_gpus: is 0"):
        load_config(None, ["cluster.backend=ray", "cluster.learner_gpus=1"])
    assert load_config(None, ["cluster.backend=ray", "cluster.env_workers=4", "cluster.local_cpus=4"]).cluster.env_workers == 4
    assert load_config(None, ["cluster.env_workers=4"]).cluster.backend == "local"  # unused by the local backend
