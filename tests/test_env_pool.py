"""EnvPool on the fixture games: lockstep batches, skipped slots, crashed and slow workers."""

from __future__ import annotations

import pytest

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments import EnvPool, EnvSpec
from prism_agents.environments.pool import EnvWorkerError


def spec(root, **overrides) -> EnvSpec:
    return EnvSpec(EnvironmentConfig(data_path=str(root), num_workers=2, **overrides), "train", expert=True)


def test_lockstep_rollout_with_skipped_slots_matches_single_envs(alfworld_fixture_root):
    with EnvPool(spec(alfworld_fixture_root), num_slots=3) as pool:
        results = pool.reset([0, 1, 0])
        assert [info["task_type"] for _, info in results] == ["pick", "clean", "pick"]
        infos = [info for _, info in results]
        active = [True, True, True]
        lengths = [0, 0, 0]
        while any(active):
            actions = [info["expert_action"] if alive else None for info, alive in zip(infos, active)]
            for slot, result in enumerate(pool.step(actions)):
                if result is None:
                    assert not active[slot]
                    continue
                _, reward, terminated, truncated, infos[slot] = result
                lengths[slot] += 1
                active[slot] = not (terminated or truncated)
        assert lengths == [5, 7, 5] and all(info["won"] for info in infos)
        with pytest.raises(ValueError, match="slot 0 has no running episode"):
            pool.step(["look", None, None])


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
