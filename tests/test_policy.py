"""The LoRA policy: a fresh adapter leaves the base unchanged, saves and loads exactly, and can be disabled."""

import json

import pytest
import torch
from safetensors.torch import load_file

from prism_agents.config.model import LoraConfig
from prism_agents.policies.lora import Policy


@pytest.fixture(scope="module")
def prompt():
    return torch.tensor([[1, 40, 41, 42, 43, 44, 2]])


def logits(policy, ids):
    with torch.no_grad():
        return policy.model(input_ids=ids).logits


def perturb(policy, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in policy.trainable_parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))


def test_only_the_adapter_is_trainable_and_a_fresh_adapter_is_the_identity(model_config, prompt):
    policy = Policy.load(model_config, LoraConfig(rank=4))
    names = [name for name, parameter in policy.model.named_parameters() if parameter.requires_grad]
    assert names and all("lora_" in name for name in names)
    assert len(names) == 2 * 7 * 2  # A and B, 7 projections, 2 layers
    with policy.adapter_disabled():
        base = logits(policy, prompt)
    assert torch.equal(logits(policy, prompt), base)
    assert str(policy.device) == "cpu" and policy.end_of_turn_id == policy.tokenizer.eos_token_id


def test_saved_adapter_loads_back_with_equal_weights_and_outputs(model_config, prompt, tmp_path):
    policy = Policy.load(model_config, LoraConfig(rank=4))
    perturb(policy, seed=1)
    path = policy.save_adapter(tmp_path / "adapters" / "v1")
    files = sorted(entry.name for entry in path.iterdir())
    assert files == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == policy.base_model_path
    loaded = Policy.load(model_config, LoraConfig(rank=4), adapter_path=path)
    saved = load_file(path / "adapter_model.safetensors")
    trained = {name: parameter for name, parameter in loaded.model.named_parameters() if parameter.requires_grad}
    assert len(saved) == len(trained)
    for name, tensor in saved.items():
        assert torch.equal(trained[name.replace(".weight", ".default.weight")], tensor)
    assert torch.equal(logits(loaded, prompt), logits(policy, prompt))
    with loaded.adapter_disabled():
        assert not torch.equal(logits(loaded, prompt), logits(policy, prompt))


def test_adapter_versions_are_never_overwritten(model_config, tmp_path):
    policy = Policy.load(model_config, LoraConfig(rank=2))
    policy.save_adapter(tmp_path / "v1")
    with pytest.raises(FileExistsError, match="v1"):
        policy.save_adapter(tmp_path / "v1")


def test_loading_a_folder_that_is_not_an_adapter_fails_clearly(model_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        Policy.load(model_config, LoraConfig(), adapter_path=tmp_path)


def test_adapter_initialisation_follows_its_seed(model_config):
    first, second, other = (Policy.load(model_config, LoraConfig(rank=2, init_seed=seed)) for seed in (3, 3, 4))
    assert all(torch.equal(a, b) for a, b in zip(first.trainable_parameters(), second.trainable_parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(first.trainable_parameters(), other.trainable_parameters()))
