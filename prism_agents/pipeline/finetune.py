"""The ``sft`` stage: train the LoRA adapter on the demonstrations routed to SFT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prism_agents.cluster.learner_group import learner_for
from prism_agents.faults import fault_point
from prism_agents.pipeline.compute import StageCompute
from prism_agents.pipeline.context import RunContext
from prism_agents.pipeline.outcome import StageOutcome
from prism_agents.types import Destination, Trajectory

SFT_DESTINATIONS = ("sft", "both")
"""Routing destinations whose trajectories the SFT learner trains on."""


def supervised_finetuning(context: RunContext, spent: StageCompute) -> StageOutcome:
    """Train on the round-0 SFT share (``sft`` and ``both``) and save the next adapter version."""
    training_set = routed_trajectories(context, round_=0, destinations=SFT_DESTINATIONS)
    return train_adapter(context, training_set, spent, stage="sft", label="round 0")


def train_adapter(
    context: RunContext, training_set: Sequence[Trajectory], spent: StageCompute, stage: str, label: str
) -> StageOutcome:
    """Run the SFT learner on ``training_set`` and save the adapter; nothing to train -> no adapter, said so.

    The adapter is saved under the next version number; the stage's record commits it (until then it is
    an orphan that a resume deletes). Steps are logged to ``metrics.jsonl`` under ``stage``; ``label``
    names the routing round trained on. With ``cluster.backend: ray`` the learner runs on
    ``cluster.learner_workers`` Ray workers for this call (:func:`~prism_agents.cluster.learner_group.learner_for`).
    """
    split = context.config.collect.split
    if not training_set:
        return StageOutcome([], {"split": split, "routing": label, "trajectories": 0, "adapter": None})
    policy = context.policy()

    def on_step(values: dict[str, Any]) -> None:
        context.metrics.log(stage, int(values["step"]), values, split=split)
        fault_point(f"{stage}.step")

    with learner_for(context.config, "sft", context.config.sft) as learner:
        metrics = learner.train(policy, training_set, prompts=context.prompts(), on_step=on_step)
    adapter = policy.save_adapter(context.folder.adapter(context.folder.next_adapter_version()))
    fault_point(f"{stage}.after_save")
    spent.trained_tokens = int(metrics["tokens_trained"])
    spent.model_parameters = policy.base_parameter_count()
    result: dict[str, Any] = {
        "split": split,
        "routing": label,
        "trajectories": len(training_set),
        "examples": int(metrics["examples"]),
        "truncated_examples": int(metrics["truncated_examples"]),
        "dropped_examples": int(metrics["dropped_examples"]),
        "epochs": context.config.sft.epochs,
        "optimizer_steps": int(metrics["steps"]),
        "trained_tokens": int(metrics["tokens_trained"]),
        "final_loss": float(metrics["loss_last_epoch"]),
        "adapter": str(adapter.relative_to(context.folder.path)),
    }
    return StageOutcome([adapter], result)


def routed_trajectories(context: RunContext, round_: int, destinations: Sequence[Destination]) -> list[Trajectory]:
    """The demonstrations routed in round ``round_`` to one of ``destinations``, in ``trajectories.jsonl`` order."""
    chosen = {r.trajectory_id for r in context.routing_records() if r.round == round_ and r.destination in destinations}
    return [d for d in context.demonstrations() if d.trajectory_id in chosen]
