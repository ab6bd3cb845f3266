"""Run the stages of a run folder in order, skipping those already done.

Before anything runs the folder is brought back to its committed state (:meth:`RunFolder.recover`). A
stage that is not done (never committed, or an output missing or changed since) runs after its record
and every later one are dropped, so no stage builds on outputs its inputs no longer match.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from prism_agents.cluster.runtime import ray_runtime
from prism_agents.config.cluster import ClusterConfig
from prism_agents.faults import fault_point
from prism_agents.logs import library_log
from prism_agents.pipeline.compute import StageCompute
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
    instead (:mod:`~prism_agents.pipeline.sharing`); ``generators`` keeps engines across runs. With
    ``cluster.backend: ray`` every stage runs on one Ray, connected for the whole run (unless this process
    is connected already: then that one, left running).
    """
    chosen = planned_stages(folder) if stages is None else [name for name in STAGES if name in stages]
    folder.recover()
    with library_log(folder.path), cluster_runtime(folder.config.cluster), RunContext(folder, generators) as context:
        for name in chosen:
            problem = folder.stage_problem(name)
            if problem is None and name != "report":
                log.info("stage %s: already done, skipped", name)
                continue
            recorded = name in folder.records()
            if folder.discard_from(name):
                if recorded and problem is not None:
                    log.warning("stage %s: %s; running it and the stages after it again", name, problem)
                context.forget_policy()  # the adapter it was loaded with may no longer be committed
            fingerprint = stage_fingerprint(folder, name) if name in SHAREABLE_STAGES else None
            donor = find_donor(folder, name, fingerprint, donors) if fingerprint else None
            if donor is not None:
                copy_stage(donor, folder, name, fingerprint)
                context.forget_policy()  # the copied outputs may include a newer adapter
                log.info("stage %s: taken over from %s (same fingerprint)", name, donor.path.name)
                continue
            log.info("stage %s: started", name)
            spent = StageCompute()
            started = time.perf_counter()
            outcome = STAGES[name](context, spent)
            spent.wall_clock_s = round(spent.wall_clock_s + time.perf_counter() - started, 3)
            fault_point(f"{name}.before_record")
            extra = {"fingerprint": fingerprint} if fingerprint else {}
            folder.mark_done(name, outcome.outputs, outcome.result, spent, **extra)
            log.info("stage %s: done", name)


def cluster_runtime(cluster: ClusterConfig) -> AbstractContextManager[None]:
    """The Ray connection of a run with ``cluster.backend: ray`` (nothing, and no Ray import, with ``local``)."""
    return ray_runtime(cluster) if cluster.uses_ray else nullcontext()
