"""The contract every learner (SFT, GRPO, PPO, plug-ins) fulfils."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from prism_agents.policies.lora import Policy
from prism_agents.policies.prompts import PromptBuilder

StepCallback = Callable[[dict[str, float]], None]
"""Called after every optimizer step with that step's metrics (see each learner for the keys)."""


class Learner(ABC):
    """Updates a policy's LoRA adapter in place from data; built from its config dataclass.

    ``LEARNERS.get(name)(config)`` builds one; ``config_class`` names the
    dataclass its config section uses.
    """

    config_class: ClassVar[type]
    """Config dataclass of this learner (e.g. :class:`~prism_agents.config.training.SFTConfig`)."""

    def __init__(self, config: Any) -> None:
        config.validate()
        self.config = config

    @abstractmethod
    def train(
        self,
        policy: Policy,
        data: Sequence[Any],
        *,
        prompts: PromptBuilder,
        on_step: StepCallback | None = None,
    ) -> dict[str, float]:
        """Train ``policy`` on ``data`` (trajectories for SFT, tasks for RL) and return final metrics.

        ``prompts`` renders episodes exactly as the generator shows them; ``on_step``
        receives each optimizer step's metrics. The caller saves the adapter afterwards.
        """
