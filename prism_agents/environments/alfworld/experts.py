"""ALFWorld experts as textworld wrappers around alfworld's ``AlfredExpert``.

After each reset and step the wrapped state's ``extra.expert_plan`` holds the
expert's remaining actions (the next one first; empty when it has none) and
``extra.expert_error`` says why when the expert failed.

- :class:`PlanOnceExpert` (``planner``): Fast Downward plans on the full PDDL
  state. ``AlfredExpert("planner")`` asks textworld for a fresh plan after every
  step (seconds to minutes each); this one plans at reset and replays the plan,
  replanning only when the game leaves it (an action other than the planned one
  that changes the state beyond marking something as looked at).
- :class:`GuardedHandcodedExpert` (``handcoded``): alfworld's rule-based agent,
  whose exceptions (timeout, failure) are reported instead of raised.
"""

from __future__ import annotations

from alfworld.agents.environment.alfred_tw_env import AlfredExpert, AlfredExpertType

NOTHING_HAPPENS = "Nothing happens."
"""ALFWorld's answer to an action that is not admissible."""
OBSERVATION_ONLY_FACT = "checked"
"""The fact look/examine/inventory/open add; no action's precondition reads it, so it cannot invalidate a plan."""


class PlanOnceExpert(AlfredExpert):
    """``AlfredExpert`` of planner type that plans once per game and replays the plan."""

    def __init__(self, env=None) -> None:
        super().__init__(env=env, expert_type=AlfredExpertType.PLANNER)
        self._plan: list[str] = []
        self._plan_facts: frozenset = frozenset()

    def load(self, gamefile: str) -> None:
        super().load(gamefile)
        self.request_infos.policy_commands = False  # plan here instead of after every step

    def reset(self):
        self._plan = []
        self._plan_facts = frozenset()
        return super().reset()

    def _gather_infos(self) -> None:
        facts = self._planning_facts()
        if not self.prev_command:  # reset
            self._replan(facts)
        elif self._plan and self.prev_command == self._plan[0] and self.state["feedback"] != NOTHING_HAPPENS:
            self._plan = self._plan[1:]
            self._plan_facts = facts
        elif facts != self._plan_facts and not self.state["won"]:
            self._replan(facts)
        self.state["extra.expert_plan"] = list(self._plan)
        self.state["extra.expert_error"] = None if self._plan or self.state["won"] else "the planner found no plan"

    def _planning_facts(self) -> frozenset:
        return frozenset(fact for fact in self.state["_facts"] if fact.name != OBSERVATION_ONLY_FACT)

    def _replan(self, facts: frozenset) -> None:
        game = self.unwrapped
        self._plan = list(game._pddl_state.replan(game._entity_infos))
        self._plan_facts = facts


class GuardedHandcodedExpert(AlfredExpert):
    """``AlfredExpert`` of handcoded type whose failures become ``extra.expert_error``."""

    def __init__(self, env=None) -> None:
        super().__init__(env=env, expert_type=AlfredExpertType.HANDCODED)

    def _gather_infos(self) -> None:
        self.state["extra.expert_error"] = None
        try:
            super()._gather_infos()
        except Exception as error:  # alfworld's rule-based agent signals its failures with assorted exceptions
            self.state["extra.expert_plan"] = []
            self.state["extra.expert_error"] = f"handcoded expert failed: {type(error).__name__}: {error}"


EXPERT_WRAPPERS = {"planner": PlanOnceExpert, "handcoded": GuardedHandcodedExpert}
"""Expert kind (``environment.expert``) -> textworld wrapper class."""
