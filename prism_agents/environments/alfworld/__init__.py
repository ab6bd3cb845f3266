"""ALFWorld: household tasks in text, played on textworld's PDDL engine."""

from prism_agents.environments.alfworld.data import SPLIT_FOLDERS, TASK_TYPES, ALFWorldDataError, list_split_tasks
from prism_agents.environments.alfworld.env import ALFWorldEnv
from prism_agents.environments.tasks import select_tasks

__all__ = ["ALFWorldDataError", "ALFWorldEnv", "SPLIT_FOLDERS", "TASK_TYPES", "list_split_tasks", "select_tasks"]
