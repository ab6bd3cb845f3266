"""RayEnvPool (env workers as Ray actors) on the fixture games, against the local EnvPool: the same expert
trajectories, demonstrations and policy rollouts; an actor killed for good, one Ray restarts, and one that hangs
each fail their episodes and the pool plays on; a whole run with ``cluster.backend=ray`` equal to ``local``."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest
import ray
from ray.exceptions import RayActorError

from prism_agents.cli import main
from prism_agents.cluster.env_actors import IDLE_RESTART_FAILURE, RayEnvPool
from prism_agents.cluster.runtime import ray_runtime
from prism_agents.config.cluster import ClusterConfig
from prism_agents.config.environment import EnvironmentConfig
from prism_agents.config.generation import GeneratorConfig, SamplingConfig
from prism_agents.config.training import PromptConfig
from prism_agents.environments import EnvPool, EnvSpec, collect_demonstrations, open_env_pool
from prism_agents.environments.pool import EnvWorkerError
from prism_agents.io import read_jsonl
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.rollout import play_episodes
from prism_agents.policies.generators import HFGenerator
from prism_agents.policies.prompts import PromptBuilder
from run_arguments import last_line
from test_env_pool import expert_actions, expert_rollout

CLUSTER = ClusterConfig(backend="ray", local_cpus=2, object_store_mib=128, env_workers=2, env_worker_cpus=0.5)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One bounded Ray for the module (2 CPUs, 128 MiB object store, no dashboard), stopped after it."""
    with ray_runtime(CLUSTER):
        yield


def spec(root, **overrides) -> EnvSpec:
    return EnvSpec(EnvironmentConfig(data_path=str(root), num_workers=2, **overrides), "train", expert=True)


def actor_pid(pool: RayEnvPool, w: int) -> int:
    return ray.get(pool._workers[w].actor.ready.remote())


def wait_until_dead(actor) -> None:
    """Block until calls to ``actor`` fail (ray.kill returns before the actor is gone)."""
    while True:
        try:
            ray.get(actor.ready.remote(), timeout=30)
        except RayActorError:
            return


def test_expert_lockstep_and_demonstrations_equal_the_local_pool(alfworld_fixture_root, tmp_path):
    env_spec = spec(alfworld_fixture_root)
    tasks, seeds = [0, 1, 0], [5, None, 7]
    with open_env_pool(env_spec, 3, ClusterConfig()) as pool:
        assert type(pool) is EnvPool
        local = expert_rollout(pool, tasks)
        local_seeded = pool.reset(tasks, seeds)
    with open_env_pool(env_spec, 3, CLUSTER) as pool:
        assert type(pool) is RayEnvPool and [pool.worker_of(slot) for slot in range(3)] == [0, 1, 0]
        assert len({actor_pid(pool, w) for w in range(2)} | {os.getpid()}) == 3  # one process per actor
        assert expert_rollout(pool, tasks) == local
        assert pool.reset(tasks, seeds) == local_seeded
    assert len({len(results) for results in local}) > 1 and all(results[-1][4]["won"] for results in local)

    config = dataclasses.replace(env_spec.config, demo_cache_dir=str(tmp_path / "demos"))
    train = env_spec.tasks()
    by_ray = collect_demonstrations(config, train, use_cache=False, progress=False, cluster=CLUSTER)
    by_processes = collect_demonstrations(config, train, use_cache=False, progress=False)
    assert [t.to_dict() for t in by_ray] == [t.to_dict() for t in by_processes]
    assert [t.task.index for t in by_ray] == [0, 1] and all(t.won for t in by_ray)


@pytest.fixture(scope="module")
def generator(model_config):
    with HFGenerator(GeneratorConfig(name="hf", hf_device="cpu"), model_config.name) as generator:
        yield generator


def policy_rollout(pool, generator) -> list[dict]:
    """Four sampled episodes (two per train task) of the tiny model in three slots, two groups taking turns."""
    prompts = PromptBuilder(generator.tokenizer, PromptConfig(history="full", max_admissible_actions=0), "alfworld")
    generator.reseed(11)
    tasks = [task for task in pool.spec.tasks() for _ in range(2)]
    sampling = SamplingConfig(max_new_tokens=6, temperature=1.0)
    played = play_episodes(pool, generator, prompts, tasks, sampling, "policy:base", StageCompute(), max_prompt_tokens=1500)
    return [trajectory.to_dict() for trajectory in played]


def test_policy_rollouts_equal_the_local_pool(alfworld_fixture_root, generator):
    config = EnvironmentConfig(data_path=str(alfworld_fixture_root), num_workers=2, max_steps=3, overlap_groups=2)
    env_spec = EnvSpec(config, "train")
    with EnvPool(env_spec, num_slots=3) as pool:
        local = policy_rollout(pool, generator)
    with RayEnvPool(env_spec, 3, CLUSTER) as pool:
        remote = policy_rollout(pool, generator)
    assert len(local) == 4 and sum(len(episode["steps"]) for episode in local) > 4
    assert all(episode["failure"] is None for episode in local)
    for mine, theirs in zip(remote, local):
        logprobs = [step.pop("completion_logprobs") for step in mine["steps"]]
        expected = [step.pop("completion_logprobs") for step in theirs["steps"]]
        assert mine == theirs
        assert logprobs == [pytest.approx(values, abs=1e-4) for values in expected]


def test_actors_killed_or_hanging_mid_episode_fail_it_and_new_actors_play_the_next(alfworld_fixture_root):
    with RayEnvPool(spec(alfworld_fixture_root, step_timeout_s=2.0), 2, CLUSTER) as pool:
        results = pool.reset([0, 1])
        killed = pool._workers[0].actor
        ray.kill(killed)  # for good (no_restart): the pool starts another actor
        wait_until_dead(killed)
        stepped = pool.step(expert_actions(results, {0, 1}))
        assert stepped[0][4]["failure"].startswith("env actor died") and stepped[0][3] is True
        assert stepped[0][4]["task_id"].endswith("trial_fixture_001") and not stepped[0][4]["won"]
        assert "failure" not in stepped[1][4]
        assert pool._workers[0].actor is not killed

        hung = actor_pid(pool, 1)
        os.kill(hung, signal.SIGSTOP)  # receives the step and never answers
        try:
            stepped = pool.step(expert_actions(stepped, {1}))
        finally:
            try:
                os.kill(hung, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert stepped[1][4]["failure"] == "worker exceeded the time limit and was restarted" and stepped[1][3]
        assert actor_pid(pool, 1) != hung

        replayed = expert_rollout(pool, [0, 1])
        assert all(results[-1][4]["won"] for results in replayed)


def test_actor_ray_restarts_while_idle_loses_its_episodes_and_plays_on(alfworld_fixture_root):
    with RayEnvPool(spec(alfworld_fixture_root), 3, CLUSTER) as pool:
        results = pool.reset([0, 1, 0])  # slots 0 and 2 on actor 0
        actor, before = pool._workers[0].actor, actor_pid(pool, 0)
        ray.kill(actor, no_restart=False)  # a crash Ray recovers from (max_restarts)
        while True:
            try:
                if ray.get(actor.ready.remote(), timeout=30) != before:
                    break
            except RayActorError:
                pass  # dead, not restarted yet
        stepped = pool.step(expert_actions(results, {0, 1}))
        assert stepped[0][4]["failure"] == IDLE_RESTART_FAILURE and stepped[0][3] is True
        assert "failure" not in stepped[1][4]
        lost = pool.step(expert_actions(results, {2}))  # the restarted actor holds none of its old episodes
        assert lost[2][4]["failure"] == IDLE_RESTART_FAILURE
        assert pool._workers[0].actor is actor  # the same handle: Ray brought the actor back
        replayed = expert_rollout(pool, [0, 1, 0])
        assert all(results[-1][4]["won"] for results in replayed)


def test_env_exception_raises_and_unplaceable_actors_are_refused(alfworld_fixture_root):
    with RayEnvPool(spec(alfworld_fixture_root), 1, CLUSTER) as pool:
        pool.reset([0])
        with pytest.raises(EnvWorkerError, match="must be a str"):
            pool.step([42])
    greedy = dataclasses.replace(CLUSTER, env_worker_cpus=2.0)
    with pytest.raises(ValueError, match=r"cluster.env_workers / cluster.env_worker_cpus: 2 env actors x 2.0 CPUs"):
        RayEnvPool(spec(alfworld_fixture_root), 2, greedy)


def run_outputs(run) -> tuple[list, list]:
    """What a run decided and played: the routing destinations, and each evaluation episode's task and actions."""
    routing = [(record["trajectory_id"], record["destination"]) for record in read_jsonl(run / "routing.jsonl")]
    episodes = [(e["task"]["task_id"], [step["action"] for step in e["steps"]]) for e in read_jsonl(run / "evaluation.jsonl")]
    return routing, episodes


@pytest.mark.slow
def test_run_on_ray_routes_and_plays_as_the_local_run(run_args, capsys):
    assert main(run_args("name=local")) == 0
    local = last_line(capsys.readouterr().out)
    assert main(run_args("name=ray", "cluster.backend=ray", "cluster.env_worker_cpus=0.5")) == 0
    remote = last_line(capsys.readouterr().out)
    assert run_outputs(remote) == run_outputs(local)
    routing, episodes = run_outputs(local)
    assert routing and episodes and all(actions for _, actions in episodes)
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["eval"]["episodes"] == len(episodes)
