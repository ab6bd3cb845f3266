"""WebShop as a Gymnasium text environment: the project's own, faithful to WebShop's text mode and reward.

A task is one goal of WebShop's shuffled goal list (synthetic goals from the
attribute file, or human instructions); splits are ranges of that list
(``test``: goals 0-499, ``validation``: 500-1499, ``train``: the rest, by
default). ``task_type`` is the goal product's category (beauty, electronics,
fashion, garden, grocery).

An episode starts at the search page and ends on ``click[buy now]``
(``terminated``) or after ``max_steps`` actions (``truncated``, default 15).
The buying step returns WebShop's reward of the purchase, in [0, 1]
(``environment.params.reward_mode: scaled``; training scales it by
``rl.reward.win``), or 1.0 only for a reward of exactly 1.0 (``success_only``);
every other step returns 0. ``info["score"]`` is WebShop's reward whatever the
mode (0 before a purchase) and ``info["won"]`` is true when it is exactly 1.0,
WebShop's success. After a purchase, ``info["purchase"]`` holds the product,
options, price and the reward's parts. ``info["admissible_actions"]`` lists
``search[<keywords>]`` (search page only) and the page's ``click[...]`` actions;
an action that is neither leaves the page unchanged and costs a step.

Observations follow ``environment.params.observation_mode`` (``text`` or
``text_rich``) and carry ``num_prev_obs`` / ``num_prev_actions`` earlier
observations and actions, as upstream's text environment builds them. Without a
task index, ``reset()`` draws the split's goal by weight (``goal_sampling:
weighted``, upstream's draw) or uniformly, from the environment's seeded generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import gymnasium
from gymnasium import spaces

from prism_agents.config.environment import EnvironmentConfig
from prism_agents.environments.base import TextEnv
from prism_agents.environments.webshop.catalog import check_goal_files, find_catalog_files
from prism_agents.environments.webshop.expert import oracle_action
from prism_agents.environments.webshop.goals import SPLIT_NAMES, weighted_goal_index
from prism_agents.environments.webshop.observation import History, render
from prism_agents.environments.webshop.params import WebShopParams
from prism_agents.environments.webshop.reward import step_reward
from prism_agents.environments.webshop.session import ShopSession
from prism_agents.environments.webshop.shop import Shop, open_shop, resolve_data_dir
from prism_agents.policies.templates import PromptTemplate
from prism_agents.registry import ENVIRONMENTS
from prism_agents.types import Task

ENV_NAME = "webshop"
MAX_PAGE_LENGTH = 1 << 20
"""Longest observation or action string the spaces accept (a description page holds a whole product description)."""
PROMPT_TEMPLATE = PromptTemplate(
    system=(
        "You are shopping on a web store for the product the instruction describes. Reply with exactly one "
        "action and nothing else. On the search page: search[...] with your keywords inside the brackets. "
        "On any other page: click[...] with exactly one item the page shows inside the brackets: a product "
        "id, an option, or a button such as next >, < prev, back to search or buy now."
    ),
    task="{instruction}",
    history_header="Recent steps:",
    history_step="{observation}\n> {action}",
    observation="Now: {observation}",
    actions_header="Available actions:",
    actions_omitted="({count} more not shown)",
)


@ENVIRONMENTS.register(ENV_NAME)
class WebShopEnv(TextEnv):
    """One WebShop split; ``reset(options={"task": i})`` plays the split's ``i``-th goal.

    Args:
        split: ``train``, ``validation`` or ``test``.
        data_path: folder holding WebShop's items_*.json files; None reads ``$WEBSHOP_DATA``.
        max_steps: actions before the episode is truncated (WebShop's default: 15).
        expert: when True, every info holds ``expert_action`` (the oracle's next action, None when it has
            none) and ``expert_error`` (why it has none).
        expert_type: ``oracle``.
        **webshop: the fields of :class:`~prism_agents.environments.webshop.params.WebShopParams` (``catalog``,
            ``goals``, ``test_goals``, ...; ``environment.params`` in a run config); those not given keep its defaults.
    """

    experts = ("oracle",)
    params_class = WebShopParams
    prompt_template = PROMPT_TEMPLATE

    def __init__(
        self,
        split: str = "train",
        data_path: Optional[str] = None,
        max_steps: int = 15,
        expert: bool = False,
        expert_type: str = "oracle",
        render_mode: Optional[str] = None,
        **webshop: Any,
    ) -> None:
        super().__init__(split=split, max_steps=max_steps, expert_type=expert_type, render_mode=render_mode)
        self.settings = WebShopParams(**webshop)
        self.settings.validate()
        self.expert = expert
        self.shop = open_shop(data_path, self.settings)
        # Product text is not ASCII (accents, symbols): the text spaces take the catalog's characters.
        self.observation_space = spaces.Text(MAX_PAGE_LENGTH, min_length=0, charset=self.shop.charset)
        self.action_space = spaces.Text(MAX_PAGE_LENGTH, min_length=0, charset=self.shop.charset)
        self._tasks = _split_tasks(self.shop, self.settings, split)
        self._weights = [self.shop.goals[_goal_index(task)]["weight"] for task in self._tasks]
        self._session: Optional[ShopSession] = None
        self._history = History(self.settings.num_prev_obs, self.settings.num_prev_actions)

    # -- construction and task listing ----------------------------------------------

    @classmethod
    def from_config(cls, config: EnvironmentConfig, split: str, expert: bool = False) -> WebShopEnv:
        return cls(
            split=split,
            data_path=config.data_path,
            max_steps=config.max_steps,
            expert=expert,
            expert_type=config.expert,
            **dataclasses.asdict(cls.params(config)),
        )

    @classmethod
    def split_names(cls, params: Any) -> tuple[str, ...]:
        return SPLIT_NAMES

    @classmethod
    def check_data(cls, config: EnvironmentConfig, split: str) -> None:
        settings = cls.params(config)
        data_dir = resolve_data_dir(config.data_path)
        files = find_catalog_files(data_dir, settings.catalog, settings.products_file, settings.attributes_file)
        check_goal_files(files, settings.goals)

    @classmethod
    def list_tasks(cls, config: EnvironmentConfig, split: str) -> list[Task]:
        settings = cls.params(config)
        return _split_tasks(open_shop(config.data_path, settings), settings, split)

    @classmethod
    def data_root(cls, config: EnvironmentConfig) -> Path:
        return resolve_data_dir(config.data_path)

    @classmethod
    def task_fingerprint(cls, config: EnvironmentConfig, task: Task) -> str:
        """The catalog, the goal and the settings that shape what an episode records (observations, rewards)."""
        settings = cls.params(config)
        shop = open_shop(config.data_path, settings)
        goal = shop.goals[_goal_index(task)]
        episode = {key: getattr(settings, key) for key in _EPISODE_SETTINGS}
        content = json.dumps([shop.catalog.fingerprint, goal, episode], sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()

    @classmethod
    def split_description(cls, config: EnvironmentConfig, split: str) -> str:
        settings = cls.params(config)
        return open_shop(config.data_path, settings).describe(settings, split)

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    @property
    def goal(self) -> dict:
        """The goal of the episode being played (WebShop's goal dict: asin, instruction_text, goal_options, ...)."""
        if self._session is None:
            raise RuntimeError("WebShopEnv.goal: no episode has started; call reset() first")
        return self._session.goal

    # -- playing -----------------------------------------------------------------------

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None) -> tuple[str, dict[str, Any]]:
        """As :meth:`TextEnv.reset`; without ``options["task"]`` and with ``goal_sampling: weighted``, the goal is
        drawn by weight as upstream's server draws it (see :func:`~prism_agents.environments.webshop.goals.weighted_goal_index`)."""
        options = dict(options or {})
        if options.get("task") is None and self.settings.goal_sampling == "weighted" and self._tasks:
            if seed is not None:
                gymnasium.Env.reset(self, seed=seed)  # seed the generator before the draw, as the base reset would
                seed = None
            options["task"] = weighted_goal_index(self._weights, float(self.np_random.uniform(0.0, sum(self._weights))))
        return super().reset(seed=seed, options=options)

    def _start(self, task: Task) -> tuple[str, dict[str, Any]]:
        goal = self.shop.goals[_goal_index(task)]
        self._session = ShopSession(self.shop, goal, self.settings.spacy_model)
        info = self._info()
        info["instruction"] = goal["instruction_text"]
        return self._history.start(self._observation()), info

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        session = self._session
        assert session is not None
        session.act(action)
        purchase = session.purchase
        reward = step_reward(purchase.score.total, self.settings.reward_mode) if purchase else 0.0
        return self._history.step(action, self._observation()), reward, purchase is not None, self._info()

    def _observation(self) -> str:
        assert self._session is not None
        return render(self._session.page, self.settings.observation_mode)

    def _info(self) -> dict[str, Any]:
        session = self._session
        assert session is not None
        purchase = session.purchase
        score = purchase.score.total if purchase else 0.0
        info: dict[str, Any] = {
            "admissible_actions": session.page.available_actions(),
            "won": score == 1.0,
            "score": score,
        }
        if purchase:
            info["purchase"] = {
                "asin": purchase.asin,
                "options": purchase.options,
                "price": purchase.price,
                **purchase.score.verbose_info(),
            }
        if self.expert:
            info["expert_action"], info["expert_error"] = oracle_action(session)
        return info


_EPISODE_SETTINGS = ("observation_mode", "num_prev_obs", "num_prev_actions", "reward_mode")
"""Settings beside the goal that change an episode's observations or rewards (so a cached demonstration)."""


def _split_tasks(shop: Shop, settings: WebShopParams, split: str) -> list[Task]:
    return [
        Task(ENV_NAME, split, position, f"goal-{goal_index}", shop.goals[goal_index]["category"])
        for position, goal_index in enumerate(shop.split_range(settings, split))
    ]


def _goal_index(task: Task) -> int:
    return int(task.task_id.removeprefix("goal-"))
