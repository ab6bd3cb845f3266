"""Generators (vLLM and HF) serving LoRA adapter versions of a tiny random Llama, and the served-adapter check;
weights synced into the running engine in place; one engine shared by runs, each sampling on its own seeded stream.

One vLLM engine serves every vLLM test of this module (engine start is the slow part).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import peft
import pytest
import torch
from run_arguments import arguments
from tiny_model import build_tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from prism_agents.config import ConfigError, load_config
from prism_agents.config.base import ConfigValueError
from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.config.rl import RLConfig
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.context import RunContext, SharedGenerators
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.policies.generators import (
    AdapterMismatchError,
    HFGenerator,
    VLLMGenerator,
    build_generator,
)
from prism_agents.policies.generators.check import check_probe_ids, next_token_logprobs, probe_prompt_ids
from prism_agents.policies.generators.merged import MergedWeights, adapter_factors
from prism_agents.policies.generators.vllm_worker import back_to_back, repack_plan
from prism_agents.registry import RegistryError

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MESSAGES = [
    "go to desk 1",
    "You arrive at desk 1. On the desk 1, you see a pen 1, a book 2 and a keychain 3. What next?",
    "Your task is to: heat some egg and put it in garbagecan.",
    "open drawer 1. close fridge 1. take pen 1 from desk 1. put apple 1 in/on countertop 1. look.",
]
GREEDY = SamplingConfig(max_new_tokens=12, temperature=0.0, ignore_eos=True)
SAMPLED = SamplingConfig(max_new_tokens=12, temperature=1.0, ignore_eos=True)
LOGPROB_TOLERANCE = 1e-3


def make_adapter(
    base_path: Path, folder: Path, seed: int, rank: int = 8, std: float = 0.5, targets: list[str] = TARGETS
) -> Path:
    """Save a random LoRA adapter whose B matrices are non-zero (normal, ``std``), so it changes the outputs."""
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = peft.get_peft_model(base, peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=std)
    model.save_pretrained(folder)
    return folder


def training_side(base_path: Path, adapter_path: Path | None) -> SimpleNamespace:
    """The training-side model (base + adapter, as the Policy holds it) and its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    if adapter_path is not None:
        model = peft.PeftModel.from_pretrained(model, adapter_path)
    return SimpleNamespace(model=model.eval(), tokenizer=AutoTokenizer.from_pretrained(base_path))


@pytest.fixture(scope="module")
def base_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("generators"))


@pytest.fixture(scope="module")
def adapters(base_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("adapters")
    return {version: make_adapter(base_path, folder / f"v{version}", seed=version) for version in (1, 2)}


@pytest.fixture(scope="module")
def prompts(base_path: Path) -> list[list[int]]:
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    return [probe_prompt_ids(tokenizer, message) for message in MESSAGES]


def generator_config(name: str, adapter_serving: str = "auto") -> GeneratorConfig:
    return GeneratorConfig(
        name=name, kv_cache_gib=1, max_model_len=1024, max_lora_rank=16, hf_batch_size=4, adapter_serving=adapter_serving
    )


@pytest.fixture(scope="module")
def hf(base_path: Path) -> HFGenerator:
    with HFGenerator(generator_config("hf"), base_path) as generator:
        yield generator


@pytest.fixture(scope="module", params=["lora", "merged"])
def vllm(base_path: Path, request: pytest.FixtureRequest) -> VLLMGenerator:
    """The vLLM generator in each way of serving an adapter: LoRA kernels, or merged weights."""
    with VLLMGenerator(generator_config("vllm", adapter_serving=request.param), base_path) as generator:
        assert generator.merged == (request.param == "merged")
        yield generator


def completion_logprobs(model: torch.nn.Module, prompt: list[int], token_ids: list[int]) -> list[float]:
    """The training side's log-prob of each of ``token_ids`` after ``prompt``, teacher-forced."""
    rows = next_token_logprobs(model, prompt + token_ids)[len(prompt) - 1 : -1]
    return rows.gather(1, torch.tensor(token_ids)[:, None]).squeeze(1).tolist()


def assert_same_scores(left: list, right: list) -> None:
    for a, b in zip(left, right, strict=True):
        assert a.greedy_ids == b.greedy_ids
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=LOGPROB_TOLERANCE)
        assert a.greedy_logprobs == pytest.approx(b.greedy_logprobs, abs=LOGPROB_TOLERANCE)


def assert_same_completions(left: list, right: list) -> None:
    for a, b in zip(left, right, strict=True):
        assert a.token_ids == b.token_ids
        assert a.text == b.text
        assert a.finish_reason == b.finish_reason
        assert a.logprobs == pytest.approx(b.logprobs, abs=LOGPROB_TOLERANCE)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigValueError) as error:
        GeneratorConfig(dtype="int8").validate()
    assert error.value.field == "dtype"
    with pytest.raises(ConfigValueError) as error:
        SamplingConfig(top_p=0.0).validate()
    assert error.value.field == "top_p"
    with pytest.raises(ConfigValueError) as error:
        GeneratorConfig(check_tolerance=0.0).validate()
    assert error.value.field == "check_tolerance"


def test_build_generator_rejects_unknown_name(base_path: Path) -> None:
    with pytest.raises(RegistryError, match="unknown generator 'nope'"):
        build_generator(GeneratorConfig(name="nope"), base_path)


def test_build_generator_returns_registered_class(base_path: Path) -> None:
    with build_generator(generator_config("hf"), base_path) as generator:
        assert isinstance(generator, HFGenerator)


def test_load_adapter_rejects_a_folder_without_adapter(hf: HFGenerator, base_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter folder"):
        hf.load_adapter(base_path, version=1)


def test_hf_batched_equals_one_at_a_time(hf: HFGenerator, adapters: dict[int, Path], prompts: list[list[int]]) -> None:
    hf.load_adapter(adapters[1], version=1)
    batched = hf.generate(prompts, GREEDY)
    single = [hf.generate([prompt], GREEDY)[0] for prompt in prompts]
    assert_same_completions(batched, single)
    assert [c.prompt_tokens for c in batched] == [len(p) for p in prompts]
    assert all(len(c.token_ids) == GREEDY.max_new_tokens and c.finish_reason == "length" for c in batched)


def test_hf_sampled_logprobs_are_the_training_side_logprobs(
    hf: HFGenerator, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    hf.load_adapter(adapters[1], version=1)
    reference = training_side(base_path, adapters[1])
    sampled = hf.generate(prompts[:2], SamplingConfig(max_new_tokens=8, temperature=1.0, ignore_eos=True))
    for prompt, completion in zip(prompts, sampled):
        expected = completion_logprobs(reference.model, prompt, completion.token_ids)
        assert completion.logprobs == pytest.approx(expected, abs=LOGPROB_TOLERANCE)


def test_hf_check_raises_on_stale_adapter(hf: HFGenerator, base_path: Path, adapters: dict[int, Path]) -> None:
    with pytest.raises(AdapterMismatchError, match="adapter version 2"):
        hf.load_adapter(adapters[1], version=2, reference=training_side(base_path, adapters[2]))


@pytest.mark.parametrize("shift", [0.5, 2.0])
def test_check_compares_each_probe_logprob_within_the_tolerance(
    hf: HFGenerator, base_path: Path, adapters: dict[int, Path], monkeypatch: pytest.MonkeyPatch, shift: float
) -> None:
    """The served log-prob of one probe token moved by ``shift`` tolerances fails the check beyond one tolerance."""
    reference = training_side(base_path, adapters[1])
    probe = check_probe_ids(reference.tokenizer, hf.config.check_prompt)
    hf.load_adapter(adapters[1], version=1)
    exact = hf.check(reference)
    assert exact.positions == len(probe) and exact.max_logprob_diff < LOGPROB_TOLERANCE
    score = hf.score
    moved = shift * hf.config.check_tolerance

    def shifted(prompts: list[list[int]]) -> list:
        scores = score(prompts)
        scores[0].token_logprobs[5] += moved
        return scores

    monkeypatch.setattr(hf, "score", shifted)
    if shift <= 1:
        assert hf.check(reference).max_logprob_diff == pytest.approx(moved, abs=LOGPROB_TOLERANCE / 10)
        return
    with pytest.raises(AdapterMismatchError, match=f"adapter version 1: log-prob of token {probe[6]} .* after the first 6 of "):
        hf.check(reference)


def test_scores_are_the_greedy_first_token_and_the_training_side_logprobs(
    hf: HFGenerator, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    hf.load_adapter(adapters[1], version=1)
    reference = training_side(base_path, adapters[1])
    scores = hf.score(prompts)
    for prompt, scored, completion in zip(prompts, scores, hf.generate(prompts, GREEDY), strict=True):
        assert len(scored.greedy_ids) == len(prompt) == len(scored.token_logprobs) + 1
        assert scored.greedy_ids[-1] == completion.token_ids[0]
        assert scored.greedy_logprobs[-1] == pytest.approx(completion.logprobs[0], abs=LOGPROB_TOLERANCE)
        expected = completion_logprobs(reference.model, prompt[:1], prompt[1:])
        assert scored.token_logprobs == pytest.approx(expected, abs=LOGPROB_TOLERANCE)


def test_in_memory_merge_equals_peft_merge(base_path: Path, tmp_path: Path) -> None:
    """rsLoRA scaling and per-module rank and alpha patterns merge as peft merges them; the base model comes back."""
    torch.manual_seed(0)
    lora = peft.LoraConfig(
        r=4, lora_alpha=8, use_rslora=True, rank_pattern={"v_proj": 2}, alpha_pattern={"down_proj": 3}, target_modules=TARGETS
    )
    model = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), lora)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    model.save_pretrained(tmp_path / "adapter")
    expected = model.merge_and_unload().state_dict()
    weights = MergedWeights(base_path, "float32")
    merged = weights.update(tmp_path / "adapter")
    assert {name.rsplit(".", 2)[-2] for name in merged} == set(TARGETS)
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-5)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).state_dict()
    restored = weights.update(None)
    assert restored.keys() == merged.keys() and not weights.changed
    assert all(torch.equal(tensor, base[name]) for name, tensor in restored.items())


FUSED_LIKE_VLLM_LLAMA = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("fused", [{}, FUSED_LIKE_VLLM_LLAMA])
def test_fused_merge_into_reused_buffers_is_each_versions_own_merge(
    base_path: Path, adapters: dict[int, Path], dtype: str, fused: dict[str, list[str]]
) -> None:
    """The one-addmm merge equals (W + scale * (B @ A)) in float32, cast to the served dtype, for every version in
    turn, although each version is written into the buffers of the one before; the base weights stay untouched.
    Projections an engine fuses are merged back to back into one buffer, in the fused layer's order."""
    served = getattr(torch, dtype)
    base = {name: tensor.to(served) for name, tensor in AutoModelForCausalLM.from_pretrained(base_path).state_dict().items()}
    weights = MergedWeights(base_path, dtype)
    weights.fuse_like(fused)
    buffers = None
    for version in (1, 2, 1):
        merged = weights.update(adapters[version])
        factors = adapter_factors(adapters[version])
        assert merged.keys() == factors.keys()
        for name, (scale, lora_b, lora_a) in factors.items():
            expected = (base[name].float() + scale * (lora_b @ lora_a)).to(served)
            assert merged[name].dtype == served
            torch.testing.assert_close(merged[name], expected)
        addresses = {name: tensor.data_ptr() for name, tensor in merged.items()}
        assert buffers in (None, addresses)
        buffers = addresses
        for module, layer in (("self_attn", "qkv_proj"), ("mlp", "gate_up_proj")):
            parts = [merged[f"model.layers.1.{module}.{part}.weight"] for part in FUSED_LIKE_VLLM_LLAMA[layer]]
            joined = back_to_back(parts)
            assert (joined is not None) == bool(fused)
            assert joined is None or torch.equal(joined, torch.cat(parts))
    assert all(torch.equal(tensor, base[name]) for name, tensor in weights.update(None).items())


@pytest.mark.vllm
def test_vllm_and_hf_agree_on_the_base_model(
    vllm: VLLMGenerator, hf: HFGenerator, base_path: Path, prompts: list[list[int]]
) -> None:
    vllm.use_base_model()
    hf.use_base_model()
    assert_same_completions(vllm.generate(prompts, GREEDY), hf.generate(prompts, GREEDY))
    assert vllm.check(training_side(base_path, None)).version is None


@pytest.mark.vllm
def test_vllm_and_hf_agree_with_an_adapter(
    vllm: VLLMGenerator, hf: HFGenerator, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    vllm.load_adapter(adapters[1], version=1)
    hf.load_adapter(adapters[1], version=1)
    served = vllm.generate(prompts, GREEDY)
    assert_same_completions(served, hf.generate(prompts, GREEDY))
    assert_same_scores(vllm.score(prompts), hf.score(prompts))
    vllm.use_base_model()
    assert [c.token_ids for c in vllm.generate(prompts, GREEDY)] != [c.token_ids for c in served]


@pytest.mark.vllm
def test_vllm_new_adapter_version_changes_output_and_passes_check(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    first = vllm.load_adapter(adapters[1], version=1, reference=training_side(base_path, adapters[1]))
    before = vllm.generate(prompts, GREEDY)
    second = vllm.load_adapter(adapters[2], version=2, reference=training_side(base_path, adapters[2]))
    after = vllm.generate(prompts, GREEDY)
    assert (first.version, second.version) == (1, 2)
    probe = check_probe_ids(vllm.tokenizer, vllm.config.check_prompt)
    assert first.positions == second.positions == len(probe)
    assert max(first.max_logprob_diff, second.max_logprob_diff) < vllm.config.check_tolerance
    assert [c.token_ids for c in before] != [c.token_ids for c in after]


@pytest.mark.vllm
def test_vllm_check_raises_on_stale_adapter(vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path]) -> None:
    with pytest.raises(AdapterMismatchError, match="VLLMGenerator serving adapter version 2.* after the first 1 of the"):
        vllm.load_adapter(adapters[1], version=2, reference=training_side(base_path, adapters[2]))


@pytest.mark.vllm
def test_vllm_check_catches_one_projection_left_on_the_older_version(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path]
) -> None:
    if not vllm.merged:
        pytest.skip("only merged serving loads projections one by one")
    stale = "model.layers.0.mlp.down_proj.weight"
    older = MergedWeights(base_path, vllm.config.dtype).update(adapters[1])[stale]
    vllm._load_weights({**vllm._weights.update(adapters[2]), stale: older})
    vllm.adapter_version = 2
    with pytest.raises(AdapterMismatchError, match="VLLMGenerator serving adapter version 2"):
        vllm.check(training_side(base_path, adapters[2]))


@pytest.mark.vllm
def test_vllm_reloads_a_version_rewritten_at_the_same_path(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path], tmp_path: Path, prompts: list[list[int]]
) -> None:
    path = make_adapter(base_path, tmp_path / "adapter", seed=1)
    vllm.load_adapter(path, version=3)
    before = vllm.generate(prompts[:1], GREEDY)
    make_adapter(base_path, path, seed=2)
    vllm.load_adapter(path, version=4, reference=training_side(base_path, adapters[2]))
    assert vllm.generate(prompts[:1], GREEDY)[0].token_ids != before[0].token_ids


@pytest.mark.vllm
def test_vllm_sampled_logprobs_are_the_training_side_logprobs(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    vllm.load_adapter(adapters[2], version=2)
    reference = training_side(base_path, adapters[2])
    sampled = vllm.generate(prompts[:2], SamplingConfig(max_new_tokens=8, temperature=0.7, top_p=0.9, ignore_eos=True))
    for prompt, completion in zip(prompts, sampled):
        expected = completion_logprobs(reference.model, prompt, completion.token_ids)
        assert completion.logprobs == pytest.approx(expected, abs=LOGPROB_TOLERANCE)


@pytest.mark.vllm
def test_vllm_refuses_an_adapter_above_max_lora_rank(
    vllm: VLLMGenerator, base_path: Path, tmp_path: Path
) -> None:
    if vllm.merged:
        pytest.skip("a merged adapter has no rank limit in the engine")
    path = make_adapter(base_path, tmp_path / "wide", seed=3, rank=32)
    with pytest.raises(ValueError, match="generator.max_lora_rank"):
        vllm.load_adapter(path, version=5)


def test_vllm_refuses_a_context_longer_than_the_model(base_path: Path) -> None:
    too_long = GeneratorConfig(name="vllm", max_model_len=4096)
    with pytest.raises(ValueError, match="generator.max_model_len is 4096 .* at most 2048"):
        VLLMGenerator(too_long, base_path)


@pytest.mark.parametrize("setting", ["temperature", "top_p"])
def test_rl_sampling_must_be_the_distribution_whose_logprobs_are_compared(setting: str) -> None:
    with pytest.raises(ConfigValueError) as error:
        RLConfig(sampling=SamplingConfig(**{setting: 0.7})).validate()
    assert error.value.field == f"sampling.{setting}"
    with pytest.raises(ConfigError, match=f"rl.sampling.{setting}: must be 1 \\(got 0.7\\): the importance ratio"):
        load_config(None, [f"rl.sampling.{setting}=0.7"])
    RLConfig().validate()


def test_runs_differing_in_per_request_settings_share_one_engine(base_path: Path) -> None:
    shared = SharedGenerators()
    try:
        first = shared.get(generator_config("hf"), base_path)
        other_seed = dataclasses.replace(generator_config("hf"), seed=7, sampling=SAMPLED)
        assert shared.get(other_seed, base_path) is first
        other_engine = shared.get(dataclasses.replace(generator_config("hf"), hf_batch_size=2), base_path)
        assert other_engine is not first
        assert not hasattr(first, "model")  # closed: one engine at a time
    finally:
        shared.close()


def test_reseeded_sampling_does_not_depend_on_earlier_calls(hf: HFGenerator, prompts: list[list[int]]) -> None:
    hf.use_base_model()
    hf.reseed(5)
    first = hf.generate(prompts, SAMPLED)
    hf.reseed(6)
    other = hf.generate(prompts, SAMPLED)
    hf.generate(prompts, SAMPLED)
    hf.reseed(5)
    assert_same_completions(hf.generate(prompts, SAMPLED), first)
    assert [c.token_ids for c in other] != [c.token_ids for c in first]


def test_a_run_samples_the_same_episodes_after_another_run_on_a_shared_engine(
    base_path: Path, alfworld_fixture_root: Path, tmp_path: Path
) -> None:
    def played(name: str, seed: int, shared: SharedGenerators) -> list[list[int]]:
        experiment, *overrides = arguments(tmp_path, base_path, alfworld_fixture_root, f"name={name}", f"generator.seed={seed}")
        config = load_config(experiment, overrides)
        with RunContext(RunFolder.create(config), shared) as context:
            spec = context.env_spec("eval_in_distribution", max_steps=2)
            source, _ = context.serve(trained=False)
            episodes = context.play(spec, context.chosen_tasks(spec, 1), SAMPLED, source, StageCompute(), "eval test")
        return [step.completion_token_ids for episode in episodes for step in episode.steps]

    alone = SharedGenerators()
    try:
        first = played("a", 1, alone)
    finally:
        alone.close()
    shared = SharedGenerators()
    try:
        other = played("b", 2, shared)
        after_other = played("a-again", 1, shared)
    finally:
        shared.close()
    assert after_other == first
    assert other != first


@pytest.mark.vllm
def test_vllm_reseeded_sampling_does_not_depend_on_earlier_calls(
    vllm: VLLMGenerator, prompts: list[list[int]]
) -> None:
    vllm.use_base_model()
    vllm.reseed(5)
    first = vllm.generate(prompts, SAMPLED)
    vllm.reseed(6)
    other = vllm.generate(prompts, SAMPLED)
    vllm.reseed(5)
    assert_same_completions(vllm.generate(prompts, SAMPLED), first)
    assert [c.token_ids for c in other] != [c.token_ids for c in first]


@pytest.mark.vllm
def test_vllm_check_catches_an_engine_left_on_the_old_weights(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    vllm.load_adapter(adapters[1], version=1, reference=training_side(base_path, adapters[1]))
    monkeypatch.setattr(vllm, "_serve_adapter", lambda path, version: None)  # the sync to version 2 is skipped
    with pytest.raises(AdapterMismatchError, match="adapter version 2"):
        vllm.load_adapter(adapters[2], version=2, reference=training_side(base_path, adapters[2]))


@pytest.mark.vllm
def test_vllm_syncs_versions_into_the_running_engine_and_back_to_the_base_model(
    vllm: VLLMGenerator, hf: HFGenerator, base_path: Path, tmp_path: Path, prompts: list[list[int]]
) -> None:
    """Adapters covering part of a fused projection (q and v of qkv, up of gate_up) are served exactly;
    going back to the base model restores its weights; the engine is never replaced."""
    engine = vllm.llm
    vllm.use_base_model()
    base_output = vllm.generate(prompts, GREEDY)
    partial = make_adapter(base_path, tmp_path / "partial", seed=4, targets=["q_proj", "v_proj", "up_proj"])
    for version, adapter in enumerate([partial, make_adapter(base_path, tmp_path / "full", seed=5)], start=6):
        vllm.load_adapter(adapter, version, reference=training_side(base_path, adapter))
        hf.load_adapter(adapter, version)
        assert_same_completions(vllm.generate(prompts, GREEDY), hf.generate(prompts, GREEDY))
    vllm.load_adapter(partial, version=8)
    vllm.use_base_model()
    assert_same_completions(vllm.generate(prompts, GREEDY), base_output)
    assert vllm.llm is engine


def engine_repack_plan(vllm: VLLMGenerator, weights: dict[str, torch.Tensor]) -> list[tuple[str, list[str]]] | None:
    """What :func:`repack_plan` decides for ``weights`` on the engine's model: each layer and its parts, or None."""
    plan = vllm.llm.collective_rpc(lambda worker: repack_plan(worker.model_runner.get_model(), weights))[0]
    return None if plan is None else [(repack.name, repack.weights) for repack in plan]


@pytest.mark.vllm
def test_vllm_repacked_layers_serve_what_vllms_reload_serves(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path]
) -> None:
    """Merged weights reach the CPU engine by repacking its linear layers (q, k, v into ``qkv_proj``, in that order);
    vLLM's general reload of the same weights serves the same scores, and both pass the check."""
    if not vllm.merged:
        pytest.skip("only merged serving loads weights into the engine")
    reference = training_side(base_path, adapters[2])
    probe = check_probe_ids(vllm.tokenizer, vllm.config.check_prompt)
    weights = MergedWeights(base_path, vllm.config.dtype).update(adapters[2])
    plan = dict(engine_repack_plan(vllm, weights))
    assert sorted(part for parts in plan.values() for part in parts) == sorted(weights)
    assert plan["model.layers.0.self_attn.qkv_proj"] == [
        f"model.layers.0.self_attn.{part}.weight" for part in ("q_proj", "k_proj", "v_proj")
    ]
    vllm.load_adapter(adapters[2], version=2, reference=reference)
    repacked = vllm.score([probe])
    vllm.llm.collective_rpc(
        lambda worker: worker.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)
    )
    vllm.llm.reset_prefix_cache()
    assert_same_scores(vllm.score([probe]), repacked)
    vllm.check(reference)


@pytest.mark.vllm
def test_vllm_weights_covering_part_of_a_fused_layer_are_left_to_vllms_reload(
    vllm: VLLMGenerator, base_path: Path, adapters: dict[int, Path]
) -> None:
    if not vllm.merged:
        pytest.skip("only merged serving loads weights into the engine")
    weights = MergedWeights(base_path, vllm.config.dtype).update(adapters[1])
    layer = "model.layers.0.self_attn"
    assert engine_repack_plan(vllm, {name: weights[name] for name in weights if name.startswith(layer)}) == [
        (f"{layer}.qkv_proj", [f"{layer}.{part}.weight" for part in ("q_proj", "k_proj", "v_proj")]),
        (f"{layer}.o_proj", [f"{layer}.o_proj.weight"]),
    ]
    without_k = {name: weights[name] for name in weights if name.startswith(layer) and ".k_proj." not in name}
    assert engine_repack_plan(vllm, without_k) is None
    wrong_shape = {f"{layer}.o_proj.weight": weights[f"{layer}.o_proj.weight"][:-1]}
    assert engine_repack_plan(vllm, wrong_shape) is None
    assert engine_repack_plan(vllm, {"model.embed_tokens.weight": torch.zeros(1)}) is None


@pytest.mark.vllm
def test_torch_thread_settings_still_apply_after_the_engine_started(vllm: VLLMGenerator) -> None:
    """vLLM's in-process CPU worker turns torch.set_num_threads into a no-op; the generator puts it back."""
    threads = torch.get_num_threads()
    other = 2 if threads == 1 else 1
    torch.set_num_threads(other)
    try:
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(threads)
