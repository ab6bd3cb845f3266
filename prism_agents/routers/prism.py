"""PRISM: route by how concentrated each expert trajectory's gradient is across the projection matrices.

Score = ``router.probe.metric`` (Gini by default) of the trajectory's per-matrix gradient norms from
:class:`~prism_agents.routers.probe.GradientProbe`; the share split then sends the concentrated ones
(above the median by default) to RL and the diffuse ones to SFT. Every metric and the probe loss are
kept in each decision's ``metrics``, so one probe serves every metric's analysis.
"""

from __future__ import annotations

from collections.abc import Sequence

from prism_agents.registry import ROUTERS
from prism_agents.routers.base import Router, RouterContext, TrajectoryScore
from prism_agents.routers.metrics import all_metrics
from prism_agents.types import Trajectory


def run_probe(trajectories: Sequence[Trajectory], context: RouterContext, gradients: bool) -> list:
    """The probe's results for ``trajectories`` under the ``router.probe`` settings (compute recorded); with
    ``cluster.backend: ray`` the batches are shared over ``cluster.learner_workers`` Ray workers (same scores)."""
    settings = context.config.router.probe
    options = dict(
        target=settings.target,
        use_adapter=context.use_adapter,
        batch_tokens=settings.batch_tokens,
        max_tokens=settings.max_tokens,
        progress=settings.progress,
    )
    config = context.config
    if config.cluster.uses_ray:
        from prism_agents.cluster.learner_group import LearnerGroup

        with LearnerGroup(config.cluster, config.model, config.lora) as group:
            results = group.probe(context.policy(), context.prompts(), trajectories, gradients, **options)
    else:
        from prism_agents.routers.probe import GradientProbe

        results = GradientProbe(context.policy(), context.prompts(), **options).probe(trajectories, gradients=gradients)
    tokens = sum(result.tokens for result in results)
    if gradients:
        context.spent.probed_tokens += tokens
    else:
        context.spent.scored_tokens += tokens
    context.spent.model_parameters = context.policy().base_parameter_count()
    return results


@ROUTERS.register("prism")
class PrismRouter(Router):
    """Gradient-concentration routing (the paper's method): high concentration -> RL."""

    @property
    def score_name(self) -> str:
        return f"{self.config.probe.metric} of the per-matrix gradient norms, {self.config.probe.target} weights"

    def score(self, trajectories: Sequence[Trajectory], context: RouterContext) -> list[TrajectoryScore]:
        metric = self.config.probe.metric
        scores = []
        for result in run_probe(trajectories, context, gradients=True):
            values = all_metrics(result.gradient_norms) | {"loss": result.loss}
            scores.append(TrajectoryScore(values[metric], values))
        return scores
