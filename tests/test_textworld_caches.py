"""The textworld engine caches change nothing: every answer equals plain textworld's, and they are in place."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from alfworld_data import alfworld_fixture_root, alfworld_real_root  # noqa: F401  (pytest fixtures)
from prism_agents.environments.alfworld import textworld_caches

TRACE = Path(__file__).parent / "textworld_trace.py"


def traced(root: Path, split: str, games: int, steps: int, *flags: str) -> list:
    done = subprocess.run(
        [sys.executable, str(TRACE), str(root), split, str(games), str(steps), *flags],
        capture_output=True, text=True, check=True, timeout=600,
    )
    return json.loads(done.stdout)


def assert_same_answers(plain: list, cached: list) -> None:
    assert len(cached) == len(plain)
    for position, (expected, answer) in enumerate(zip(plain, cached)):
        assert answer == expected, f"answer {position} differs"


def test_random_play_on_fixture_games_equals_plain_textworld(alfworld_fixture_root):
    plain = traced(alfworld_fixture_root, "train", 2, 25, "--plain")
    assert_same_answers(plain, traced(alfworld_fixture_root, "train", 2, 25))
    assert len(plain) == 2 * 2 * 26  # two games, each reset twice, 25 steps each (random play wins neither)


def test_random_play_on_real_games_of_every_type_equals_plain_textworld(alfworld_real_root):
    plain = traced(alfworld_real_root, "eval_out_of_distribution", 6, 15, "--plain")
    assert_same_answers(plain, traced(alfworld_real_root, "eval_out_of_distribution", 6, 15))
    assert len({answer[1] for answer in plain if len(answer) == 6}) > 50  # the actions reached many observations


def test_planner_expert_equals_plain_textworld(alfworld_real_root):
    plain = traced(alfworld_real_root, "eval_out_of_distribution", 2, 50, "--plain", "--expert")
    assert_same_answers(plain, traced(alfworld_real_root, "eval_out_of_distribution", 2, 50, "--expert"))
    assert sum(answer[-1]["won"] for answer in plain if len(answer) == 6) == 4  # the expert won all four episodes


def test_caches_are_in_place_after_a_game_starts(alfworld_fixture_root):
    from prism_agents.environments.alfworld.env import ALFWorldEnv

    env = ALFWorldEnv(split="train", data_path=str(alfworld_fixture_root))
    env.reset(options={"task": 0})
    env.close()
    import fast_downward
    import textworld.envs.pddl.textgen as textgen

    assert textworld_caches.install() is True
    assert textgen.copy_context is textworld_caches._context_copy
    assert hasattr(fast_downward.pddl2sas, "__wrapped__")  # the memoizing wrapper around the translation
