"""Gymnasium text environments, their parallel stepping and expert demonstrations.

Importing this package registers every environment twice: with Gymnasium
(``gymnasium.make("prism_agents/ALFWorld-v0", split=..., expert=..., data_path=...)``,
``gymnasium.make("prism_agents/WebShop-v0", split="test", data_path=...)``)
and with the project registry (``ENVIRONMENTS.get("alfworld").from_config(config, split)``).
Episode length is enforced by the environment itself (``max_steps``), so the
Gymnasium registration adds no ``TimeLimit`` wrapper. The import is light: the
game engines, spaCy and the search index load when an environment first plays,
and Ray only when a pool of ``cluster.backend: ray`` opens (:func:`open_env_pool`).
"""

import gymnasium

from prism_agents.environments.alfworld import ALFWorldEnv
from prism_agents.environments.base import TextEnv
from prism_agents.environments.demonstrations import collect_demonstrations
from prism_agents.environments.pool import EnvPool, EnvSpec, SlotPool, open_env_pool, pool_workers
from prism_agents.environments.tasks import select_tasks
from prism_agents.environments.webshop import WebShopEnv

ALFWORLD_GYM_ID = "prism_agents/ALFWorld-v0"
WEBSHOP_GYM_ID = "prism_agents/WebShop-v0"

for _gym_id, _entry_point in (
    (ALFWORLD_GYM_ID, "prism_agents.environments.alfworld.env:ALFWorldEnv"),
    (WEBSHOP_GYM_ID, "prism_agents.environments.webshop.env:WebShopEnv"),
):
    if _gym_id not in gymnasium.registry:
        gymnasium.register(_gym_id, entry_point=_entry_point, disable_env_checker=True)

__all__ = [
    "ALFWORLD_GYM_ID",
    "WEBSHOP_GYM_ID",
    "ALFWorldEnv",
    "EnvPool",
    "EnvSpec",
    "SlotPool",
    "TextEnv",
    "WebShopEnv",
    "collect_demonstrations",
    "open_env_pool",
    "pool_workers",
    "select_tasks",
]
