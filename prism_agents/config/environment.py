"""Config section ``environment``: which benchmark to play and how."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from prism_agents.config.base import ConfigValueError, require, require_one_of

EXPERT_KINDS = ("planner", "handcoded", "oracle")
"""Expert kinds an environment may offer for demonstrations (ALFWorld: planner, handcoded; WebShop: oracle)."""
WEBSHOP_CATALOGS = ("1000", "full")
"""WebShop product sets: the 1,000-product development catalog or the full 1.18M-product one."""
WEBSHOP_GOAL_KINDS = ("synthetic", "human")
"""WebShop goal sets: built from the attribute file, or the crowd-written instructions."""


def default_demo_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/prism-agents/demonstrations`` (``~/.cache/...`` when XDG_CACHE_HOME is unset)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache_home) / "prism-agents" / "demonstrations"


@dataclass
class WebShopConfig:
    """WebShop's catalog, goals and search (used when ``environment.name`` is ``webshop``)."""

    catalog: str = "1000"
    """Product set: ``1000`` (items_shuffle_1000.json + items_ins_v2_1000.json) or ``full`` (items_shuffle.json + items_ins_v2.json)."""
    products_file: Optional[str] = None
    """File name of the raw products in the data folder; None uses the catalog's WebShop name (items_shuffle_1000.json)."""
    attributes_file: Optional[str] = None
    """File name of the attributes and instructions; None uses the catalog's WebShop name (items_ins_v2_1000.json)."""
    goals: str = "synthetic"
    """Goal set: ``synthetic`` (from the attribute file; about 6,910 on the 1000 catalog) or ``human`` (needs items_human_ins.json)."""
    test_goals: int = 500
    """Goals 0 .. test_goals-1 of the shuffled goal list form the ``test`` split (WebShop's convention: 500)."""
    validation_goals: int = 1000
    """The next validation_goals goals form the ``validation`` split (WebShop's convention: 1000); the rest are ``train``."""
    spacy_model: str = "en_core_web_sm"
    """spaCy pipeline whose part-of-speech tags give the reward's noun matching (``en_core_web_sm``, as upstream WebShop)."""
    index_cache_dir: Optional[str] = None
    """Folder caching the BM25 search index by catalog content; None uses ``$XDG_CACHE_HOME/prism-agents/webshop-index``."""

    def validate(self) -> None:
        require_one_of(self.catalog, WEBSHOP_CATALOGS, "catalog")
        require_one_of(self.goals, WEBSHOP_GOAL_KINDS, "goals")
        require(self.test_goals >= 0, "test_goals", f"must be 0 or more (got {self.test_goals})")
        require(self.validation_goals >= 0, "validation_goals", f"must be 0 or more (got {self.validation_goals})")
        require(bool(self.spacy_model), "spacy_model", "must name a spaCy pipeline (e.g. 'en_core_web_sm')")


@dataclass
class EnvironmentConfig:
    """The benchmark environment, its data and the limits of an episode."""

    name: str = "alfworld"
    """Registry name of the environment (``alfworld``, ``webshop``), an entry-point name or ``"package.module:Class"``."""
    data_path: Optional[str] = None
    """Folder holding the benchmark data (ALFWorld: the folder with ``json_2.1.1``, None reads ``$ALFWORLD_DATA``;
    WebShop: the folder with the items_*.json files, None reads ``$WEBSHOP_DATA``)."""
    max_steps: int = 50
    """Actions allowed per episode; the episode is truncated after this many steps (verl-agent: 50 on ALFWorld, 15 on WebShop)."""
    win_reward: float = 10.0
    """Reward of the step that ends the task: ALFWorld pays it on the winning step, WebShop pays it times the
    purchase's score on ``click[buy now]``; every other step returns 0 (verl-agent's convention)."""
    task_types: list[str] = field(default_factory=list)
    """Task types to keep (ALFWorld: pick, look, clean, heat, cool, pick2); empty keeps all."""
    num_workers: int = 2
    """Worker processes that step environments (and play experts) in parallel."""
    step_timeout_s: float = 120.0
    """Seconds one step may take in a worker before the worker is killed, restarted and the episode reported failed."""
    reset_timeout_s: float = 900.0
    """Seconds one reset may take (it loads the game and, with an expert, plans it) before the worker is killed."""
    expert: str = "planner"
    """Demonstration expert. ALFWorld: ``planner`` (PDDL planner with the full state, plans once per game) or
    ``handcoded``; WebShop: ``oracle`` (searches, finds the goal product, picks the goal options, buys)."""
    demo_cache_dir: Optional[str] = None
    """Folder caching expert demonstrations by game content and expert kind; None uses
    ``$XDG_CACHE_HOME/prism-agents/demonstrations`` (``~/.cache/prism-agents/demonstrations``)."""
    start_method: str = "forkserver"
    """How worker processes start: ``forkserver`` or ``spawn`` (both safe in a process that holds threads)."""
    webshop: WebShopConfig = field(default_factory=WebShopConfig)
    """WebShop's catalog, goals and search settings."""

    def validate(self) -> None:
        require(bool(self.name), "name", "must name an environment (e.g. 'alfworld')")
        require(self.max_steps >= 1, "max_steps", f"must be at least 1 (got {self.max_steps})")
        require(self.win_reward > 0, "win_reward", f"must be positive (got {self.win_reward})")
        require(self.num_workers >= 1, "num_workers", f"must be at least 1 (got {self.num_workers})")
        require(self.step_timeout_s > 0, "step_timeout_s", f"must be positive (got {self.step_timeout_s})")
        require(self.reset_timeout_s > 0, "reset_timeout_s", f"must be positive (got {self.reset_timeout_s})")
        require_one_of(self.expert, EXPERT_KINDS, "expert")
        require_one_of(self.start_method, ("forkserver", "spawn"), "start_method")
        from prism_agents.registry import ENVIRONMENTS, RegistryError

        try:
            env_class = ENVIRONMENTS.get(self.name)
        except RegistryError as error:
            raise ConfigValueError("name", str(error)) from None
        experts = getattr(env_class, "experts", ())
        require(
            not experts or self.expert in experts,
            "expert",
            f"{self.name} offers the expert(s) {', '.join(map(repr, experts))} (got {self.expert!r})",
        )

    def resolved_demo_cache_dir(self) -> Path:
        """The demonstration cache folder this config names (or the XDG default)."""
        return Path(self.demo_cache_dir).expanduser() if self.demo_cache_dir else default_demo_cache_dir()
