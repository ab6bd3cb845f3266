"""Importing the package and reading the environments' class contract loads no game engine, spaCy, torch or nltk."""

import json
import subprocess
import sys

HEAVY_MODULES = ("alfworld", "nltk", "spacy", "textworld", "torch", "transformers", "vllm")


def modules_loaded_by(code: str) -> list[str]:
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys; print(json.dumps(sorted(set({HEAVY_MODULES!r}) & set(sys.modules))))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_package_and_the_environments_loads_no_heavy_module():
    assert modules_loaded_by("import prism_agents, prism_agents.environments") == []


def test_the_class_contract_and_gymnasium_registration_load_no_heavy_module(alfworld_fixture_root):
    code = f"""
import gymnasium, prism_agents
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.policies.templates import template_names
from prism_agents.registry import ENVIRONMENTS
assert {{"prism_agents/ALFWorld-v0", "prism_agents/WebShop-v0"}} <= set(gymnasium.registry)
for name in ("alfworld", "webshop"):
    env = ENVIRONMENTS.get(name)
    config = EnvironmentConfig(name=name, data_path={str(alfworld_fixture_root)!r})
    assert env.experts and env.prompt_template and env.split_names(env.params(config))
ENVIRONMENTS.get("alfworld").check_data(EnvironmentConfig(data_path={str(alfworld_fixture_root)!r}), "train")
template_names()
"""
    assert modules_loaded_by(code) == []
