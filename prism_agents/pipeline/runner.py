"""Run the stages of a run folder in order, skipping those already done."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prism_agents.pipeline.context import RunContext, SharedGenerators
from prism_agents.pipeline.run_folder import RunFolder
from prism_agents.pipeline.sharing import SHAREABLE_STAGES, copy_stage, find_donor, stage_fingerprint
from prism_agents.pipeline.stages import STAGES

log = logging.getLogger(__name__)

TRAINING_STAGES = ("collect", "probe", "route", "sft", "reprobe", "rl")
"""Stages a base-model evaluation (``eval.policy=base``) does not need."""
PROBE_STAGES = ("collect", "probe", "route", "report")
"""Stages of ``prism-agents probe``: score and route without training."""


def planned_stages(folder: RunFolder) -> list[str]:
    """The stages this run's config asks for, in order."""
    config = folder.config
    skipped = set(TRAINING_STAGES) if config.eval.policy == "base" else set()
    if not config.router.reprobe:
        skipped.add("reprobe")
    return [name for name in STAGES if name not in skipped]


def run_stages(
    folder: RunFolder,
    stages: Sequence[str] | None = None,
    donors: Sequence[RunFolder] = (),
    generators: SharedGenerators | None = None,
) -> None:
    """Run every planned stage (or those of ``stages``, in run order) not done yet; ``report`` always runs.

    A shareable stage that one of ``donors`` finished under the same fingerprint is copied from it
    instead (:mod:`~prism_agents.pipeline.sharing`); ``generators`` keeps engines across runs.
    """
    chosen = planned_stages(folder) if stages is None else [name for name in STAGES if name in stages]
    with RunContext(folder, generators) as context:
        for name in chosen:
            if folder.stage_done(name) and name != "report":
                log.info("stage %s: already done, skipped", name)
                continue
            fingerprint = stage_fingerprint(folder, name) if name in SHAREABLE_STAGES else None
            donor = find_donor(folder, name, fingerprint, donors) if fingerprint else None
            if donor is not None:
                copy_stage(donor, folder, name, fingerprint)
                context.forget_policy()  # the copied outputs may include a newer adapter
                log.info("stage %s: taken over from %s (same fingerprint)", name, donor.path.name)
                continue
            log.info("stage %s: started", name)
            with context.compute.stage(name) as spent:
                outcome = STAGES[name](context, spent)
            extra = {"fingerprint": fingerprint} if fingerprint else {}
            folder.mark_done(name, outcome.outputs, outcome.result, **extra)
            log.info("stage %s: done", name)
