"""prism-agents: hybrid SFT + RL training of LLM agents on text environments, with pluggable data routers.

Importing ``prism_agents`` registers the Gymnasium environments
(``gymnasium.make("prism_agents/ALFWorld-v0", ...)``); the other built-in
components are found through :mod:`prism_agents.registry` when first named.
"""

import prism_agents.environments  # noqa: F401  (Gymnasium registration)

__version__ = "0.1.0"
