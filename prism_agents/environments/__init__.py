"""Gymnasium text environments, their parallel stepping and expert demonstrations.

Importing this package registers every environment twice: with Gymnasium
(``gymnasium.make("prism_agents/ALFWorld-v0", split=..., expert=..., data_path=...)``)
and with the project registry (``ENVIRONMENTS.get("alfworld").from_config(config, split)``).
Episode length is enforced by the environment itself (``max_steps``), so the
Gymnasium registration adds no ``TimeLimit`` wrapper.
"""

import gymnasium

from prism_agents.environments.alfworld import ALFWorldEnv
from prism_agents.environments.base import TextEnv
from prism_agents.environments.demonstrations import collect_demonstrations
from prism_agents.environments.pool import EnvPool, EnvSpec
from prism_agents.environments.tasks import select_tasks

ALFWORLD_GYM_ID = "prism_agents/ALFWorld-v0"

if ALFWORLD_GYM_ID not in gymnasium.registry:
    gymnasium.register(ALFWORLD_GYM_ID, entry_point="prism_agents.environments.alfworld.env:ALFWorldEnv", disable_env_checker=True)

__all__ = ["ALFWORLD_GYM_ID", "ALFWorldEnv", "EnvPool", "EnvSpec", "TextEnv", "collect_demonstrations", "select_tasks"]
