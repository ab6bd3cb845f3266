"""ALFWorld as a Gymnasium text environment, on the real textworld PDDL engine.

Each game is played by textworld's ``PddlEnv`` (Fast Downward underneath),
wrapped with alfworld's ``AlfredDemangler`` (readable object names such as
``desk 2``), ``AlfredInfos`` (the game file in the state) and, with
``expert=True``, an expert wrapper from :mod:`.experts`. textworld and
alfworld are imported when the first game starts, so importing this module
(and reading the class's contract attributes) stays light; the engine then gets
:mod:`.textworld_caches` (the same answers, about 12x faster per step).

The reward is ALFWorld's own: 1.0 on the step that wins, 0 otherwise (training
scales it by ``rl.reward.win``); ``score`` is 1.0 once won, else 0.0. An action
that is not admissible is answered ``"Nothing happens."`` and costs a step, as
in ALFWorld.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments.alfworld import data, textworld_caches
from prism_agents.environments.base import TextEnv
from prism_agents.policies.templates import PromptTemplate
from prism_agents.registry import ENVIRONMENTS
from prism_agents.types import Task

if TYPE_CHECKING:
    import textworld

INSTRUCTION_PATTERN = re.compile(r"Your task is to: .*")
"""The goal sentence at the end of ALFWorld's first observation."""
EXPERTS = ("planner", "handcoded")
"""Expert kinds (``environment.expert``); :data:`.experts.EXPERT_WRAPPERS` holds their textworld wrappers."""
WIN_REWARD = 1.0
"""Reward of the winning step."""
PROMPT_TEMPLATE = PromptTemplate(
    system=(
        "You are playing a household text game. Reply with exactly one action, such as "
        "'go to desk 1' or 'open drawer 2', nothing else."
    ),
    task="{instruction}",
    history_header="Recent steps:",
    history_step="{observation}\n> {action}",
    observation="Now: {observation}",
    actions_header="Admissible actions:",
    actions_omitted="({count} more not shown)",
)


@ENVIRONMENTS.register(data.ENV_NAME)
class ALFWorldEnv(TextEnv):
    """One ALFWorld split; ``reset(options={"task": i})`` plays ``tasks()[i]`` (sorted game paths).

    Args:
        split: ``train``, ``eval_in_distribution`` (valid_seen) or ``eval_out_of_distribution`` (valid_unseen).
        data_path: folder holding ``json_2.1.1``; None reads ``$ALFWORLD_DATA``.
        task_types: short task types to keep (pick, look, clean, heat, cool, pick2); empty keeps all.
        max_steps: actions before the episode is truncated.
        expert: when True, every info holds ``expert_action`` (None when the expert has none) and
            ``expert_error`` (None unless the expert failed).
        expert_type: ``planner`` or ``handcoded``.
    """

    experts = EXPERTS
    prompt_template = PROMPT_TEMPLATE
    engine_packages = ("textworld", "alfworld")

    def __init__(
        self,
        split: str = "train",
        data_path: Optional[str] = None,
        task_types: list[str] | tuple[str, ...] = (),
        max_steps: int = 50,
        expert: bool = False,
        expert_type: str = "planner",
        render_mode: Optional[str] = None,
    ) -> None:
        super().__init__(split=split, max_steps=max_steps, expert_type=expert_type, render_mode=render_mode)
        self.data_root = data.resolve_data_root(data_path)
        self.expert = expert
        self.expert_type = expert_type
        self._tasks = data.list_split_tasks(self.data_root, split, tuple(task_types))
        self._game: Any = None
        self._loaded_game_file: Optional[Path] = None
        self._won = False

    # -- construction and task listing ----------------------------------------------

    @classmethod
    def from_config(cls, config: EnvironmentConfig, split: str, expert: bool = False) -> ALFWorldEnv:
        return cls(
            split=split,
            data_path=config.data_path,
            task_types=list(config.task_types),
            max_steps=config.max_steps,
            expert=expert,
            expert_type=config.expert,
        )

    @classmethod
    def split_names(cls, params: Any) -> tuple[str, ...]:
        return tuple(data.SPLIT_FOLDERS)

    @classmethod
    def check_data(cls, config: EnvironmentConfig, split: str) -> None:
        data.split_folder(data.resolve_data_root(config.data_path), split)

    @classmethod
    def list_tasks(cls, config: EnvironmentConfig, split: str) -> list[Task]:
        return data.list_split_tasks(data.resolve_data_root(config.data_path), split, tuple(config.task_types))

    @classmethod
    def data_root(cls, config: EnvironmentConfig) -> Path:
        return data.resolve_data_root(config.data_path)

    @classmethod
    def task_fingerprint(cls, config: EnvironmentConfig, task: Task) -> str:
        game_file = data.resolve_data_root(config.data_path) / task.task_id / data.GAME_FILE
        return hashlib.sha256(game_file.read_bytes()).hexdigest()

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    # -- playing -----------------------------------------------------------------------

    def _start(self, task: Task) -> tuple[str, dict[str, Any]]:
        game_file = self.data_root / task.task_id / data.GAME_FILE
        self._check_task_type(task)
        if self._game is None:
            import textworld

            textworld_caches.install()
            self._game = textworld.start(str(game_file), self._request_infos(), wrappers=self._wrappers())
        elif game_file != self._loaded_game_file:
            self._game.load(str(game_file))
        self._loaded_game_file = game_file
        state = self._game.reset()
        self._won = bool(state["won"])
        info = self._info(state)
        match = INSTRUCTION_PATTERN.search(state.feedback)
        info["instruction"] = match.group(0).strip() if match else ""
        return state.feedback, info

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        # PddlEnv answers any text that is not an admissible command with "Nothing happens."
        state, _, _ = self._game.step(action)
        won_now = bool(state["won"]) and not self._won
        self._won = bool(state["won"])
        reward = WIN_REWARD if won_now else 0.0
        return state.feedback, reward, self._won, self._info(state)

    def _info(self, state: Any) -> dict[str, Any]:
        info: dict[str, Any] = {
            "admissible_actions": list(state["admissible_commands"]),
            "won": bool(state["won"]),
            "score": 1.0 if state["won"] else 0.0,
        }
        if self.expert:
            plan = state.get("extra.expert_plan") or []
            info["expert_action"] = plan[0] if plan else None
            info["expert_error"] = state.get("extra.expert_error")
        return info

    def _request_infos(self) -> textworld.EnvInfos:
        import textworld

        extras = ["gamefile", "expert_plan"] if self.expert else ["gamefile"]
        return textworld.EnvInfos(won=True, admissible_commands=True, extras=extras)

    def _wrappers(self) -> list:
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

        from prism_agents.environments.alfworld.experts import EXPERT_WRAPPERS

        wrappers: list = [AlfredDemangler(shuffle=False), AlfredInfos]
        if self.expert:
            wrappers.append(EXPERT_WRAPPERS[self.expert_type])
        return wrappers

    def _check_task_type(self, task: Task) -> None:
        traj_data_file = self.data_root / task.task_id / data.TRAJ_DATA_FILE
        alfred_type = json.loads(traj_data_file.read_text())["task_type"]
        if data.TASK_TYPES.get(alfred_type) != task.task_type:
            raise data.ALFWorldDataError(
                f"{traj_data_file}: task_type {alfred_type!r} disagrees with the task folder name (type {task.task_type!r})"
            )

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None
        super().close()
