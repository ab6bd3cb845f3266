"""Generator replicas as Ray actors (cluster.backend=ray) on a bounded local Ray: two replicas serve what one local
generator serves, the served-adapter check runs on every replica, and a killed replica comes back synced.

One Ray (2 CPUs, 128 MiB object store, no dashboard) serves the whole module and is shut down after it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest
import ray
from test_generators import (
    GREEDY,
    MESSAGES,
    SAMPLED,
    adapters,  # noqa: F401 - fixture
    assert_same_completions,
    assert_same_scores,
    base_path,  # noqa: F401 - fixture
    training_side,
)
from run_arguments import arguments
from transformers import AutoTokenizer

from prism_agents.cluster.generator_replicas import (
    AdapterFiles,
    ReplicaGenerator,
    ReplicaLostError,
    contiguous_shares,
)
from prism_agents.cluster.runtime import ray_runtime
from prism_agents.config import load_config
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.generation import GeneratorConfig
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.context import RunContext, SharedGenerators, engine_key
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.policies.generators import AdapterMismatchError, HFGenerator, VLLMGenerator
from prism_agents.policies.generators.check import probe_prompt_ids

TWO_REPLICAS = ClusterConfig(backend="ray", generator_replicas=2, generator_cpus=0.5)
"""Half a CPU each, so the module's generators fit the 2 CPUs of its Ray side by side."""


def generator_config(name: str) -> GeneratorConfig:
    """Small engines, so that two vLLM replicas and a local engine fit beside each other."""
    return GeneratorConfig(name=name, kv_cache_gib=0.25, max_model_len=512, hf_batch_size=4, num_threads=1)


@pytest.fixture(scope="module")
def local_ray(tiny_model_threads):
    with ray_runtime(ClusterConfig(backend="ray", local_cpus=2, object_store_mib=128)):
        yield
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def prompts(base_path: Path) -> list[list[int]]:
    """Five prompts, so that two replicas get unequal shares (3 and 2)."""
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    return [probe_prompt_ids(tokenizer, message) for message in [*MESSAGES, "examine shelf 1. inventory."]]


@pytest.fixture(scope="module")
def hf_replicas(local_ray, base_path: Path) -> ReplicaGenerator:
    """Two HF replicas, started the way a run starts them: through SharedGenerators with the run's cluster section."""
    shared = SharedGenerators()
    try:
        generator = shared.get(generator_config("hf"), base_path, TWO_REPLICAS)
        assert isinstance(generator, ReplicaGenerator) and generator.engines == ["HFGenerator"] * 2
        yield generator
    finally:
        shared.close()


def test_contiguous_shares_cover_the_batch_in_order() -> None:
    assert contiguous_shares(5, 2) == [range(0, 3), range(3, 5)]
    assert contiguous_shares(1, 3) == [range(0, 1), range(1, 1), range(1, 1)]
    assert [i for share in contiguous_shares(11, 4) for i in share] == list(range(11))


def test_the_cluster_section_decides_the_engine(base_path: Path) -> None:
    config = generator_config("hf")
    local = engine_key(config, base_path)
    assert engine_key(config, base_path, ClusterConfig()) == local
    assert engine_key(config, base_path, TWO_REPLICAS) != local
    assert engine_key(config, base_path, dataclasses.replace(TWO_REPLICAS, generator_replicas=3)) != engine_key(
        config, base_path, TWO_REPLICAS
    )


def test_two_replicas_serve_what_one_local_generator_serves(
    hf_replicas: ReplicaGenerator, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    with HFGenerator(generator_config("hf"), base_path) as local:
        hf_replicas.use_base_model()
        base = hf_replicas.generate(prompts, GREEDY)
        assert_same_completions(base, local.generate(prompts, GREEDY))
        assert_same_scores(hf_replicas.score(prompts), local.score(prompts))
        checked = hf_replicas.load_adapter(adapters[1], 1, reference=training_side(base_path, adapters[1]))
        local.load_adapter(adapters[1], 1)
        served = hf_replicas.generate(prompts, GREEDY)
        assert_same_completions(served, local.generate(prompts, GREEDY))
        assert_same_scores(hf_replicas.score(prompts), local.score(prompts))
    assert checked.version == 1 and checked.max_logprob_diff < hf_replicas.config.check_tolerance
    assert [c.token_ids for c in served] != [c.token_ids for c in base]  # the adapter changes what is served


def test_the_check_catches_a_replica_left_on_an_older_version(
    hf_replicas: ReplicaGenerator, base_path: Path, adapters: dict[int, Path]
) -> None:
    hf_replicas.load_adapter(adapters[2], 2, reference=training_side(base_path, adapters[2]))
    # Replica 1 goes back to version 1's weights while it is told it holds the current sync (a sync that did not land).
    ray.get(hf_replicas.replicas[1].serve.remote(AdapterFiles.read(adapters[1]), 2, hf_replicas._sync))
    with pytest.raises(AdapterMismatchError, match=r"generator replica 1 of 2 \(HFGenerator\) serving adapter version 2"):
        hf_replicas.check(training_side(base_path, adapters[2]))
    hf_replicas.load_adapter(adapters[2], 2, reference=training_side(base_path, adapters[2]))  # synced again: passes


def test_a_killed_replica_is_restarted_and_synced_again(
    hf_replicas: ReplicaGenerator, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    hf_replicas.load_adapter(adapters[1], 1, reference=training_side(base_path, adapters[1]))
    hf_replicas.reseed(3)
    greedy, sampled = hf_replicas.generate(prompts, GREEDY), hf_replicas.generate(prompts, SAMPLED)
    pid, _ = ray.get(hf_replicas.replicas[1].ready.remote())
    os.kill(pid, signal.SIGKILL)
    hf_replicas.reseed(3)
    assert_same_completions(hf_replicas.generate(prompts, GREEDY), greedy)
    assert_same_completions(hf_replicas.generate(prompts, SAMPLED), sampled)
    restarted, _ = ray.get(hf_replicas.replicas[1].ready.remote())
    assert restarted != pid


def test_a_replica_ray_cannot_bring_back_stops_with_a_resumable_error(
    hf_replicas: ReplicaGenerator, prompts: list[list[int]]
) -> None:
    """Last user of the module's replicas: replica 0 is ended for good (as when its restarts are used up)."""
    ray.kill(hf_replicas.replicas[0], no_restart=True)
    with pytest.raises(ReplicaLostError, match=r"replica 0 of 2 .*cluster.max_actor_restarts=3 \(ActorDiedError.*--resume"):
        hf_replicas.generate(prompts, GREEDY)


@pytest.mark.slow
def test_a_run_on_the_ray_backend_plays_the_greedy_episodes_of_the_local_backend(
    local_ray, base_path: Path, alfworld_fixture_root: Path, tmp_path: Path
) -> None:
    """The run's cluster section reaches SharedGenerators through RunContext: two replicas play what one engine plays."""

    def played(*cluster: str) -> list[list[int]]:
        experiment, *overrides = arguments(tmp_path, base_path, alfworld_fixture_root, f"name=n{len(cluster)}", *cluster)
        shared = SharedGenerators()
        try:
            with RunContext(RunFolder.create(load_config(experiment, overrides)), shared) as context:
                spec = context.env_spec("train", max_steps=2)  # two games in lockstep: one prompt per replica
                source, _ = context.serve(trained=False)
                episodes = context.play(spec, context.chosen_tasks(spec, 2), GREEDY, source, StageCompute(), "eval test")
                assert isinstance(context.generator(), ReplicaGenerator) == bool(cluster)
        finally:
            shared.close()
        assert len(episodes) == 2 and all(episode.steps for episode in episodes)
        return [step.completion_token_ids for episode in episodes for step in episode.steps]

    ray_backend = ("cluster.backend=ray", "cluster.generator_replicas=2", "cluster.generator_cpus=0.25", "cluster.env_worker_cpus=0.25")
    assert played(*ray_backend) == played()


@pytest.mark.slow
@pytest.mark.vllm
def test_two_vllm_replicas_serve_what_one_local_engine_serves(
    local_ray, base_path: Path, adapters: dict[int, Path], prompts: list[list[int]]
) -> None:
    config = generator_config("vllm")
    with VLLMGenerator(config, base_path) as local, ReplicaGenerator(config, base_path, TWO_REPLICAS) as replicas:
        assert replicas.engines == ["VLLMGenerator"] * 2
        for version in (1, 2):
            checked = replicas.load_adapter(adapters[version], version, reference=training_side(base_path, adapters[version]))
            local.load_adapter(adapters[version], version)
            assert checked.version == version and checked.max_logprob_diff < config.check_tolerance
            assert_same_completions(replicas.generate(prompts, GREEDY), local.generate(prompts, GREEDY))
            assert_same_scores(replicas.score(prompts), local.score(prompts))
            replicas.reseed(version)
            local.reseed(version)  # sampled on one stream: each prompt's seed is its place in the whole batch
            assert_same_completions(replicas.generate(prompts, SAMPLED), local.generate(prompts, SAMPLED))
