"""Shared pytest fixtures for the ALFWorld tests: the tiny fixture games and the real data.

Import the fixtures into a test module (``from tests.alfworld_data import ...``
or ``from alfworld_data import ...``) to use them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import alfworld.info
import pytest

FIXTURE_SOURCE = Path(__file__).parent / "fixtures" / "alfworld"
GOAL_PLACEHOLDER = "UNKNOWN GOAL"
"""Where alfworld's grammar template takes the goal sentence."""


def build_fixture_data(destination: Path) -> Path:
    """Lay the fixture games out under ``destination`` like ``alfworld-download`` does; return the data root.

    The games are kept in ``tests/fixtures/alfworld/games/<split>/`` and copied to
    ``destination/json_2.1.1/<split>/``, the folder ALFWorld's data root holds.

    Each trial's ``game.tw-pddl`` joins its ``problem.pddl`` with the domain and
    grammar of the installed alfworld package, the grammar's goal placeholder
    replaced by the trial's goal sentence (as ``alfworld-generate`` does).
    """
    domain = Path(alfworld.info.ALFRED_PDDL_PATH).read_text()
    grammar = Path(alfworld.info.ALFRED_TWL2_PATH).read_text()
    if GOAL_PLACEHOLDER not in grammar:
        raise RuntimeError(f"{alfworld.info.ALFRED_TWL2_PATH} has no {GOAL_PLACEHOLDER!r} placeholder")
    shutil.copytree(FIXTURE_SOURCE / "games", destination / "json_2.1.1", dirs_exist_ok=True)
    for problem_file in destination.glob("json_2.1.1/*/*/*/problem.pddl"):
        traj_data = json.loads((problem_file.parent / "traj_data.json").read_text())
        goal = traj_data["turk_annotations"]["anns"][0]["task_desc"]
        game = {
            "pddl_domain": domain,
            "grammar": grammar.replace(GOAL_PLACEHOLDER, goal),
            "pddl_problem": problem_file.read_text(),
            "solvable": True,
        }
        (problem_file.parent / "game.tw-pddl").write_text(json.dumps(game))
    return destination


@pytest.fixture(scope="session")
def alfworld_fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root holding the three fixture games (train: pick, clean; valid_seen: look; no valid_unseen)."""
    return build_fixture_data(tmp_path_factory.mktemp("alfworld_fixture"))


@pytest.fixture(scope="session")
def alfworld_real_root() -> Path:
    """The real ALFWorld data root from $ALFWORLD_DATA; the test is skipped when it is not set or incomplete."""
    root = os.environ.get("ALFWORLD_DATA")
    if not root:
        pytest.skip("real ALFWorld games: set ALFWORLD_DATA to the folder holding json_2.1.1 (alfworld-download)")
    if not (Path(root) / "json_2.1.1" / "valid_unseen").is_dir():
        pytest.skip(f"real ALFWorld games: $ALFWORLD_DATA={root} has no json_2.1.1/valid_unseen")
    return Path(root)
