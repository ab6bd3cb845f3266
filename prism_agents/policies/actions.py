"""Turn a policy completion into the action sent to the environment.

A completion may carry extra text: a label (``Action: go to desk 1.``), quotes,
a trailing explanation, several lines. Extraction never fails; it proceeds as:

1. **Candidate line.** The first line that starts with an ``Action:`` label
   (case-insensitive; ``>`` also counts) is used, else the first non-empty line.
   The label, surrounding quotes/backticks/asterisks and a trailing period are
   removed.
2. **Matching** (only when admissible actions are given), first rule that hits:

   - ``exact``: the candidate equals an admissible action;
   - ``template``: an admissible action of the form ``verb[<...>]`` (a
     placeholder, as WebShop's ``search[<keywords>]``) accepts any
     ``verb[text]`` with non-empty text; the verb is matched case-insensitively
     and written as the template writes it;
   - ``normalized``: equal after lower-casing, collapsing whitespace and
     dropping surrounding punctuation;
   - ``prefix``: the normalized candidate starts with a normalized admissible
     action followed by a word boundary (``go to desk 1 to find the pen``);
     the longest such action wins, so ``go to desk 1`` never matches
     ``go to desk 10``;
   - ``fuzzy``: the admissible action with the highest
     ``difflib.SequenceMatcher`` ratio against the normalized candidate, when
     that ratio is at least :data:`FUZZY_THRESHOLD` (ties: the earlier action),
     among the actions that hold the same numbers as the candidate, so an
     object id is never changed (``go to desk 2`` never becomes ``go to desk 1``).

   The matched admissible action is returned verbatim.
3. **No match.** The cleaned candidate is returned as-is with
   ``valid=False``; the environment then answers with its own message
   (ALFWorld: ``Nothing happens.``).

Without an admissible list the cleaned candidate is returned, with
``valid=True`` and ``match="unchecked"``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

FUZZY_THRESHOLD = 0.85
"""Lowest SequenceMatcher ratio accepted as a fuzzy match (tolerates a typo or a missing article)."""

_TEMPLATE = re.compile(r"^(\w+)\[<[^>]*>\]$")
_BRACKETED = re.compile(r"^(\w+)\[(.+)\]$", re.DOTALL)
_LABEL = re.compile(r"^\s*(?:[*_`#]*\s*)?(?:action\s*:|>)\s*", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
_WRAPPERS = "\"'`*_ \t"
_SURROUNDING_PUNCTUATION = ".,;:!?\"'`*_()[]{}<> \t"


@dataclass(frozen=True)
class ParsedAction:
    """The action extracted from one completion."""

    action: str
    """Text sent to the environment (an admissible action verbatim when one matched)."""
    valid: bool
    """True when the action is admissible (or when no admissible list was given)."""
    match: str
    """Rule that produced the action: exact, normalized, prefix, fuzzy, none or unchecked."""


def normalize(text: str) -> str:
    """Lower-case, collapse whitespace and strip surrounding punctuation."""
    return " ".join(text.lower().split()).strip(_SURROUNDING_PUNCTUATION)


def candidate_text(completion: str) -> str:
    """The action-bearing line of a completion, without label, quotes or trailing period."""
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    labelled = [line for line in lines if _LABEL.match(line)]
    line = _LABEL.sub("", labelled[0] if labelled else lines[0], count=1)
    line = line.strip(_WRAPPERS)
    if line.endswith("."):
        line = line[:-1]
    return line.strip(_WRAPPERS)


def parse_action(completion: str, admissible: Sequence[str] | None = None) -> ParsedAction:
    """Extract the action from ``completion`` and match it against ``admissible`` (see module doc)."""
    candidate = candidate_text(completion)
    if not admissible:
        return ParsedAction(candidate, True, "unchecked")
    if candidate in admissible:
        return ParsedAction(candidate, True, "exact")
    templated = _fill_template(candidate, admissible)
    if templated is not None:
        return ParsedAction(templated, True, "template")
    wanted = normalize(candidate)
    normalized = [normalize(action) for action in admissible]
    for action, norm in zip(admissible, normalized):
        if norm == wanted:
            return ParsedAction(action, True, "normalized")
    prefixes = [
        (len(norm), -index)
        for index, norm in enumerate(normalized)
        if norm and wanted.startswith(norm) and not wanted[len(norm)].isalnum()
    ]
    if prefixes:
        return ParsedAction(admissible[-max(prefixes)[1]], True, "prefix")
    numbers = _NUMBER.findall(wanted)
    ratios = [
        (difflib.SequenceMatcher(None, wanted, norm).ratio(), -index)
        for index, norm in enumerate(normalized)
        if _NUMBER.findall(norm) == numbers
    ]
    if ratios and max(ratios)[0] >= FUZZY_THRESHOLD:
        return ParsedAction(admissible[-max(ratios)[1]], True, "fuzzy")
    return ParsedAction(candidate, False, "none")


def _fill_template(candidate: str, admissible: Sequence[str]) -> str | None:
    """``verb[text]`` when ``candidate`` reads so and ``verb[<...>]`` is admissible; else None."""
    bracketed = _BRACKETED.match(candidate)
    if bracketed is None or not bracketed.group(2).strip():
        return None
    verbs = {match.group(1).lower(): match.group(1) for match in map(_TEMPLATE.match, admissible) if match}
    verb = verbs.get(bracketed.group(1).lower())
    return f"{verb}[{bracketed.group(2).strip()}]" if verb else None
