"""Run the stages of a run folder in order, skipping those already done."""

from __future__ import annotations

import logging

from prism_agents.pipeline.context import RunContext
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.pipeline.stages import STAGES

log = logging.getLogger(__name__)

TRAINING_STAGES = ("collect", "sft")
"""Stages a base-model evaluation (``eval.policy=base``) does not need."""


def planned_stages(folder: RunFolder) -> list[str]:
    """The stages this run's config asks for, in order."""
    if folder.config.eval.policy == "base":
        return [name for name in STAGES if name not in TRAINING_STAGES]
    return list(STAGES)


def run_stages(folder: RunFolder) -> None:
    """Run every planned stage that is not done yet; each records its outputs when it finishes."""
    with RunContext(folder) as context:
        for name in planned_stages(folder):
            if folder.stage_done(name) and name != "report":
                log.info("stage %s: already done, skipped", name)
                continue
            log.info("stage %s: started", name)
            with context.compute.stage(name) as spent:
                outcome = STAGES[name](context, spent)
            folder.mark_done(name, outcome.outputs, outcome.result)
            log.info("stage %s: done", name)
