"""Action extraction: labels, quotes and explanations are tolerated; matching rules in order."""

import pytest

from prism_agents.policies.actions import FUZZY_THRESHOLD, ParsedAction, parse_action

ADMISSIBLE = [
    "go to desk 1",
    "go to desk 10",
    "take pen 1 from desk 1",
    "put apple 1 in/on countertop 1",
    "look",
    "inventory",
]


@pytest.mark.parametrize(
    ("completion", "action", "valid", "match"),
    [
        ("go to desk 1", "go to desk 1", True, "exact"),
        ("Action: go to desk 1.", "go to desk 1", True, "exact"),
        ("**Action:** look", "look", True, "exact"),
        ("> inventory", "inventory", True, "exact"),
        ('"Go to  Desk 1"', "go to desk 1", True, "normalized"),
        ("`take pen 1 from desk 1`!", "take pen 1 from desk 1", True, "normalized"),
        ("go to desk 1 to look for the pen", "go to desk 1", True, "prefix"),
        ("go to desk 10, it may hold the pen", "go to desk 10", True, "prefix"),
        ("I see a pen.\nAction: take pen 1 from desk 1. It is there.", "take pen 1 from desk 1", True, "prefix"),
        ("go to dsk 1", "go to desk 1", True, "fuzzy"),
        ("put apple 1 in countertop 1", "put apple 1 in/on countertop 1", True, "fuzzy"),
        ("go to desk 2", "go to desk 2", False, "none"),
        ("dance wildly", "dance wildly", False, "none"),
        ("", "", False, "none"),
        ("\n\n  look around the room\nthen go", "look", True, "prefix"),
    ],
)
def test_parse_against_admissible(completion, action, valid, match):
    parsed = parse_action(completion, ADMISSIBLE)
    assert (parsed.action, parsed.valid, parsed.match) == (action, valid, match)


def test_without_a_list_the_cleaned_text_is_sent_unchecked():
    parsed = parse_action("Action: 'search[red shoes]'.", None)
    assert (parsed.action, parsed.valid, parsed.match) == ("search[red shoes]", True, "unchecked")


def test_fuzzy_match_needs_the_threshold():
    assert FUZZY_THRESHOLD > 0.5
    assert parse_action("go somewhere 1", ADMISSIBLE).valid is False


WEBSHOP_RESULTS = ["click[back to search]", "click[next >]", "click[b0fx000004]"]


@pytest.mark.parametrize(
    ("completion", "admissible", "action", "valid", "match"),
    [
        ("search[retro speaker]", ["search[<keywords>]"], "search[retro speaker]", True, "template"),
        ("Action: Search[ retro speaker ]", ["search[<keywords>]"], "search[retro speaker]", True, "template"),
        ("search[]", ["search[<keywords>]"], "search[]", False, "none"),
        ("search[retro speaker]", WEBSHOP_RESULTS, "search[retro speaker]", False, "none"),
        ("click[B0FX000004]", WEBSHOP_RESULTS, "click[b0fx000004]", True, "normalized"),
        ("click[next >] to see more", WEBSHOP_RESULTS, "click[next >]", True, "prefix"),
    ],
)
def test_a_placeholder_action_accepts_any_filled_in_text(completion, admissible, action, valid, match):
    assert parse_action(completion, admissible) == ParsedAction(action, valid, match)
