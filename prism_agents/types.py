"""Plain data records passed between the parts of a run.

Every record round-trips through JSON (``to_dict`` / ``from_dict``) so that stage
outputs such as ``trajectories.jsonl`` can be written, read back and resumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Destination = Literal["sft", "rl", "both"]


class JsonRecord:
    """Mixin for dataclasses: ``to_dict`` through plain JSON types (nested records included) and ``from_dict`` for flat ones."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls(**data)


@dataclass(frozen=True)
class Task(JsonRecord):
    """One playable task of an environment split."""

    env: str
    """Registry name of the environment the task belongs to (e.g. ``alfworld``)."""
    split: str
    """Split name (e.g. ``train``, ``eval_out_of_distribution``)."""
    index: int
    """Position of the task in the split's documented, stable order."""
    task_id: str
    """Stable identifier, unique across splits (e.g. the game's path relative to the data root)."""
    task_type: str
    """Benchmark task family (ALFWorld: pick, look, clean, heat, cool, pick2)."""


@dataclass
class Step(JsonRecord):
    """One agent turn: the observation shown, the action taken and what came back."""

    observation: str
    """Observation the action answered (the text the policy saw last)."""
    action: str
    """Action sent to the environment, after parsing."""
    reward: float
    """Reward returned by the environment for this action."""
    admissible_actions: list[str] = field(default_factory=list)
    """Actions the environment listed as valid before this step (empty if it lists none)."""
    raw_completion: str | None = None
    """Full text the policy generated, before action extraction (None for expert steps)."""
    valid_action: bool = True
    """False when the parsed action was not among the admissible actions."""
    completion_token_ids: list[int] | None = None
    """Token ids the policy generated (the completion the action was parsed from); None for expert steps."""
    completion_logprobs: list[float] | None = None
    """Log-probability of each generated token under the serving policy (temperature 1); None for expert steps."""
    prompt_tokens: int = 0
    """Length in tokens of the whole prompt the policy answered; 0 for expert steps."""
    prompt_token_ids: list[int] | None = None
    """Token ids fed to the policy before this step's completion: the whole prompt, or with
    ``continues_context`` what followed the previous step's prompt and completion; None for expert steps."""
    continues_context: bool = False
    """True when the served prompt was the previous step's prompt and completion followed by
    ``prompt_token_ids`` (full history: one growing context per episode); False when it started afresh."""


@dataclass
class Trajectory(JsonRecord):
    """A whole episode on one task, from the first observation to the end."""

    trajectory_id: str
    """Unique id within a run (e.g. ``expert:<task_id>``)."""
    task: Task
    """The task played."""
    instruction: str
    """The goal text given to the agent (ALFWorld: ``Your task is to: ...``)."""
    initial_observation: str
    """Observation returned by ``reset`` (room description including the goal)."""
    steps: list[Step]
    """Turns in order."""
    won: bool
    """Whether the episode ended in a win."""
    score: float
    """Benchmark score in [0, 1] at the end of the episode."""
    source: str
    """Who acted: ``expert:planner``, ``expert:handcoded`` or ``policy:<adapter version>``."""
    failure: str | None = None
    """Why the episode could not be played to its end (worker crash, timeout, expert error); None when it ran normally."""
    truncated: bool = False
    """True when the step limit cut the episode (Gymnasium's ``truncated`` without a failure): its last state
    still had a future, which PPO's GAE bootstraps. False for an episode that ended or failed, and in older files."""
    final_observation: str | None = None
    """Observation after the last step (where a truncated episode stopped); None for expert trajectories and older files."""
    final_admissible_actions: list[str] = field(default_factory=list)
    """Actions the environment listed with ``final_observation``."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        fields = dict(data)
        fields["task"] = Task.from_dict(fields["task"])
        fields["steps"] = [Step.from_dict(step) for step in fields["steps"]]
        return cls(**fields)


@dataclass
class RouteDecision(JsonRecord):
    """Where one trajectory goes, and why."""

    trajectory_id: str
    """Id of the routed trajectory."""
    destination: Destination
    """``sft``, ``rl`` or ``both``."""
    score: float
    """The router's score for the trajectory (its meaning depends on the router)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Named metric values behind the score."""


@dataclass
class RoutingRecord(JsonRecord):
    """One line of ``routing.jsonl``: a routing decision with the task it concerns."""

    round: int
    """0 for the routing before training, 1 for the re-probe after SFT."""
    trajectory_id: str
    """Id of the routed trajectory (as in ``trajectories.jsonl``)."""
    task_id: str
    """The trajectory's task."""
    task_type: str
    """The task's family (ALFWorld: pick, look, clean, heat, cool, pick2)."""
    router: str
    """The router's name as configured (``router.name``)."""
    score: float
    """The router's score."""
    metrics: dict[str, float]
    """Named values behind the score."""
    destination: Destination
    """``sft``, ``rl`` or ``both``."""
