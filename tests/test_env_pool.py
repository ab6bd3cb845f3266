"""EnvPool on the fixture games: lockstep batches equal to single environments, skipped slots, workers killed
while idle or mid-step, and hanging workers; opening the local backend's pool imports no Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments import EnvPool, EnvSpec
from prism_agents.environments.pool import THREAD_VARIABLES, EnvWorkerError


def spec(root, **overrides) -> EnvSpec:
    return EnvSpec(EnvironmentConfig(data_path=str(root), num_workers=2, **overrides), "train", expert=True)


def expert_rollout(pool, tasks):
    """Play ``tasks`` (one per slot) in lockstep with the expert's actions; per slot the reset and the step results."""
    results = pool.reset(tasks)
    played = [[result] for result in results]
    infos = [info for _, info in results]
    active = [True] * len(tasks)
    while any(active):
        actions = [info["expert_action"] if alive else None for info, alive in zip(infos, active)]
        for slot, result in enumerate(pool.step(actions)):
            assert (result is None) == (not active[slot])  # a finished slot is skipped, not stepped
            if result is not None:
                played[slot].append(result)
                _, _, terminated, truncated, infos[slot] = result
                active[slot] = not (terminated or truncated)
    return played


def single_env_rollout(env_spec, task, actions):
    """The same task played in one environment in this process, with ``actions``."""
    env = env_spec.build()
    try:
        return [env.reset(options={"task": task})] + [env.step(action) for action in actions]
    finally:
        env.close()


def test_lockstep_rollout_with_skipped_slots_matches_single_envs(alfworld_fixture_root):
    env_spec = spec(alfworld_fixture_root)
    tasks = [0, 1, 0]
    with EnvPool(env_spec, num_slots=3) as pool:
        played = expert_rollout(pool, tasks)
        with pytest.raises(ValueError, match="slot 0 has no running episode"):
            pool.step(["look", None, None])
    assert len({len(results) for results in played}) > 1, "the slots must finish at different steps"
    assert all(results[-1][4]["won"] for results in played)
    for task, results in zip(tasks, played):
        actions = [result[-1]["expert_action"] for result in results[:-1]]  # info is last in reset and step results
        assert results == single_env_rollout(env_spec, task, actions)


def worker_signal(pool, w, signum):
    os.kill(pool._workers[w].process.pid, signum)


def expert_actions(results, slots):
    return [results[slot][-1]["expert_action"] if slot in slots else None for slot in range(len(results))]


def test_worker_killed_while_idle_is_restarted_and_only_its_episode_fails(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root), num_slots=3, num_workers=3) as pool:
        results = pool.reset([0, 1, 0])
        dead = pool._workers[0].process
        dead.kill()
        dead.join()  # dead before the next call: nothing is pending on it
        stepped = pool.step(expert_actions(results, {1, 2}))  # slot 0 is not stepped now ...
        assert stepped[0] is None and all("failure" not in result[4] for result in stepped[1:])
        assert pool._workers[0].process is not dead and pool._workers[0].process.is_alive()
        lost = pool.step(expert_actions([results[0]] + stepped[1:], {0, 1, 2}))  # ... but its episode is gone
        assert "worker process died while idle" in lost[0][4]["failure"] and lost[0][3] is True
        assert lost[0][4]["task_id"].endswith("trial_fixture_001")
        assert all("failure" not in result[4] for result in lost[1:])
        replayed = expert_rollout(pool, [0, 1, 0])  # the restarted worker and the others play on
        assert all(results[-1][4]["won"] for results in replayed)


def test_worker_killed_mid_step_and_a_hanging_worker_fail_their_episodes(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root, step_timeout_s=2.0), num_slots=3, num_workers=3) as pool:
        results = pool.reset([0, 1, 0])
        worker_signal(pool, 0, signal.SIGSTOP)  # receives the step, then is killed before it can answer
        worker_signal(pool, 1, signal.SIGSTOP)  # receives the step and never answers
        killer = threading.Timer(0.5, worker_signal, (pool, 0, signal.SIGKILL))
        killer.start()
        try:
            stepped = pool.step(expert_actions(results, {0, 1, 2}))
        finally:
            killer.join()
        assert stepped[0][4]["failure"] == "worker process died (exit code -9)" and stepped[0][3] is True
        assert "time limit" in stepped[1][4]["failure"] and stepped[1][3] is True
        assert "failure" not in stepped[2][4]
        assert all(worker.process.is_alive() for worker in pool._workers)
        replayed = expert_rollout(pool, [0, 1, 0])
        assert all(results[-1][4]["won"] for results in replayed)


def test_crashed_worker_is_restarted_and_its_episodes_fail(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root), num_slots=2) as pool:
        pool.reset([0, 1])
        pool._workers[0].process.kill()
        results = pool.step(["look", "look"])
        assert "worker process died" in results[0][4]["failure"] and results[0][3] is True
        assert results[0][4]["task_id"].endswith("trial_fixture_001")
        assert "failure" not in results[1][4]
        observation, info = pool.reset([1, None])[0]  # the restarted worker plays again
        assert "failure" not in info and info["task_type"] == "clean"
        assert pool.step(["go to countertop 1", None])[0][0].startswith("You arrive at countertop 1")


def test_slow_step_kills_the_worker_and_loses_its_other_slots(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root, step_timeout_s=0.001), num_slots=4, num_workers=2) as pool:
        pool.reset([0, 0, 1, 1])
        results = pool.step(["look", None, None, None])
        assert "time limit" in results[0][4]["failure"]
        lost = pool.step([None, None, "look", "look"])  # slot 2 shared worker 0 with slot 0
        assert "another slot" in lost[2][4]["failure"]
        assert lost[3][4]["failure"].startswith("worker exceeded the time limit")  # 1 ms is too short for worker 1 too


def test_env_exception_is_raised_with_the_worker_traceback(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root), num_slots=1) as pool:
        pool.reset([0])
        with pytest.raises(EnvWorkerError, match="must be a str"):
            pool.step([42])


def test_bad_batch_shapes_are_rejected(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root), num_slots=2) as pool:
        with pytest.raises(ValueError, match="one entry per slot"):
            pool.reset([0])
        with pytest.raises(IndexError, match="task index 5"):
            pool.reset([5, 0])


def test_submitted_steps_are_collected_later_even_when_their_worker_died_meanwhile(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root), num_slots=2) as pool:
        results = pool.reset([0, 1])
        worker_signal(pool, 0, signal.SIGSTOP)  # receives slot 0's step, never answers it
        first = pool.submit_step(expert_actions(results, {0}))
        with pytest.raises(RuntimeError, match="worker 0 still has calls not collected"):
            pool.submit_step(expert_actions(results, {0}))
        worker_signal(pool, 0, signal.SIGKILL)
        pool._workers[0].process.join()
        second = pool.submit_step(expert_actions(results, {1}))  # must leave the dead, busy worker 0 to collect
        assert pool.collect(first)[0][4]["failure"] == "worker process died (exit code -9)"
        stepped = pool.collect(second)
        assert stepped[0] is None and "failure" not in stepped[1][4]
        assert stepped[1] == single_env_rollout(pool.spec, 1, [results[1][1]["expert_action"]])[1]


def worker_thread_settings(env) -> tuple[str, ...]:
    return tuple(os.environ[variable] for variable in THREAD_VARIABLES)


def test_workers_use_environment_worker_threads(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root, worker_threads=3), num_slots=1) as pool:
        [(_, outcome)] = list(pool.imap(worker_thread_settings, [()], timeout_s=60))
    assert outcome.value == ("3", "3", "3")


def test_the_local_backend_opens_an_env_pool_without_importing_ray(alfworld_fixture_root):
    code = (
        "import sys\n"
        "import prism_agents.cluster.runtime\n"
        "from prism_agents.config.cluster import ClusterConfig\n"
        "from prism_agents.config.environment import EnvironmentConfig\n"
        "from prism_agents.environments import EnvPool, EnvSpec, open_env_pool\n"
        f"spec = EnvSpec(EnvironmentConfig(data_path={str(alfworld_fixture_root)!r}), 'train')\n"
        "with open_env_pool(spec, 2, ClusterConfig(backend='local')) as pool:\n"
        "    assert type(pool) is EnvPool and pool.reset([0, 1])[1][1]['task_type'] == 'clean'\n"
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().splitlines()[-1] == "[]"
