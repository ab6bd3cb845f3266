"""WebShop's settings: ``environment.params`` of a run whose ``environment.name`` is ``webshop``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from prism_agents.config.base import require, require_one_of
from prism_agents.environments.webshop.catalog import CATALOGS, GOAL_KINDS
from prism_agents.environments.webshop.goals import GOAL_SAMPLINGS
from prism_agents.environments.webshop.observation import OBSERVATION_MODES
from prism_agents.environments.webshop.reward import REWARD_MODES


@dataclass
class WebShopParams:
    """WebShop's catalog, goals, observations, reward and search."""

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
    goal_seed: int = 42
    """Seed of the stream that draws product prices inside price ranges and then every goal's price limit.
    Upstream does not seed it (its limits change from run to run); 42 gives the list upstream gets when seeded
    with 42, as verl-agent seeds it. The goal list's shuffle keeps upstream's seed, 233."""
    goal_sampling: str = "weighted"
    """How ``reset()`` without a task index picks the goal: ``weighted`` (by each goal's ``weight``, as upstream's
    server draws) or ``uniform``."""
    observation_mode: str = "text"
    """Upstream's observation mode: ``text`` (visible text joined by `` [SEP] ``) or ``text_rich`` (one line per
    text, ``[button] ... [button_]`` markers and ``You have clicked ...`` lines)."""
    num_prev_obs: int = 0
    """Earlier observations each step's observation carries before the page (upstream's ``num_prev_obs``)."""
    num_prev_actions: int = 0
    """Earlier actions each step's observation carries (upstream's ``num_prev_actions``)."""
    reward_mode: str = "scaled"
    """What the buying step returns: ``scaled`` (WebShop's reward in [0, 1], which training multiplies by
    ``rl.reward.win``) or ``success_only`` (1.0 when that reward is 1.0, else 0). Scores and success use the reward."""
    spacy_model: str = "en_core_web_sm"
    """spaCy pipeline whose part-of-speech tags give the reward's noun matching (``en_core_web_sm``, as upstream WebShop)."""
    index_cache_dir: Optional[str] = None
    """Folder caching the BM25 search index by catalog content; None uses ``$XDG_CACHE_HOME/prism-agents/webshop-index``."""

    def validate(self) -> None:
        require_one_of(self.catalog, tuple(CATALOGS), "catalog")
        require_one_of(self.goals, GOAL_KINDS, "goals")
        require(self.test_goals >= 0, "test_goals", f"must be 0 or more (got {self.test_goals})")
        require(self.validation_goals >= 0, "validation_goals", f"must be 0 or more (got {self.validation_goals})")
        require_one_of(self.goal_sampling, GOAL_SAMPLINGS, "goal_sampling")
        require_one_of(self.observation_mode, OBSERVATION_MODES, "observation_mode")
        require(self.num_prev_obs >= 0, "num_prev_obs", f"must be 0 or more (got {self.num_prev_obs})")
        require(self.num_prev_actions >= 0, "num_prev_actions", f"must be 0 or more (got {self.num_prev_actions})")
        require_one_of(self.reward_mode, REWARD_MODES, "reward_mode")
        require(bool(self.spacy_model), "spacy_model", "must name a spaCy pipeline (e.g. 'en_core_web_sm')")
