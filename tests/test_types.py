"""The run records survive a JSON round trip unchanged."""

import json

from prism_agents.types import RouteDecision, Step, Task, Trajectory


def test_records_round_trip_through_json():
    task = Task("alfworld", "train", 3, "json_2.1.1/train/pick_x/trial_1", "pick")
    step = Step("You are in a room.", "go to desk 1", 0.0, ["go to desk 1", "look"], "go to desk 1.", True)
    trajectory = Trajectory("expert:1", task, "Your task is to: ...", "You are in a room.", [step], True, 1.0, "expert:planner")
    decision = RouteDecision("expert:1", "rl", 0.42, {"gini": 0.42})
    for record in (task, step, trajectory, decision):
        assert type(record).from_dict(json.loads(json.dumps(record.to_dict()))) == record
