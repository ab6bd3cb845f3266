"""Plays ALFWorld games with seeded random actions and prints every answer as JSON (for test_textworld_caches).

    python tests/textworld_trace.py DATA_ROOT SPLIT GAMES STEPS [--plain] [--expert]

``--plain`` leaves textworld's engine without :mod:`prism_agents.environments.alfworld.textworld_caches`;
``--expert`` follows the planner expert instead of random actions and records its plan at every step.
Each game is reset twice, so the second reset replays a game the process has seen.
"""

from __future__ import annotations

import json
import random
import sys

from prism_agents.environments.alfworld import textworld_caches
from prism_agents.environments.alfworld.env import ALFWorldEnv


def trace(data_root: str, split: str, games: int, steps: int, expert: bool) -> list:
    env = ALFWorldEnv(split=split, max_steps=steps, data_path=data_root, expert=expert)
    picks = random.Random(0)
    answers: list = []
    by_type: dict[str, int] = {}
    for task in env.tasks():  # the first games of each type in turn
        if len(by_type) == games:
            break
        by_type.setdefault(task.task_type, task.index)
    for index in by_type.values():
        for _ in range(2):
            observation, info = env.reset(options={"task": index})
            answers.append([observation, info])
            done = False
            while not done:
                action = info["expert_action"] if expert else picks.choice([*info["admissible_actions"], "jump around"])
                observation, reward, terminated, truncated, info = env.step(action)
                answers.append([action, observation, reward, terminated, truncated, info])
                done = terminated or truncated
    env.close()
    return answers


if __name__ == "__main__":
    root, split, games, steps, *flags = sys.argv[1:]
    if "--plain" in flags:
        textworld_caches.leave_out()
    print(json.dumps(trace(root, split, int(games), int(steps), "--expert" in flags)))
