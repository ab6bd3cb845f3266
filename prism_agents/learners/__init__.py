"""Learners that update the policy's LoRA adapter; registered in :data:`prism_agents.registry.LEARNERS`."""

from prism_agents.learners.base import Learner, StepCallback
from prism_agents.learners.sft import SFTLearner

__all__ = ["Learner", "SFTLearner", "StepCallback"]
