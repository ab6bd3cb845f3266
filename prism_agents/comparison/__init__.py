"""``prism-agents compare``: run an ablation's variants and seeds, then tabulate and plot them.

:mod:`~prism_agents.comparison.ablation` reads the ablation file (light to import);
:mod:`~prism_agents.comparison.runner` runs it (imports the training stack).
"""

from prism_agents.comparison.ablation import Ablation, load_ablation

__all__ = ["Ablation", "load_ablation"]
