"""Caches for work the textworld PDDL engine repeats on every step and reset, with identical results.

ALFWorld runs on textworld's PDDL engine, which on every step re-derives the text of every
admissible command from its grammar. Measured on this project's CPU machine (textworld 1.7.0, 180
random steps over 12 ``eval_out_of_distribution`` games), a step took 49 ms, spent as follows:

- **Re-parsing the same strings.** The grammar's templates, and the logic queries in them, go
  through a tatsu parser each time they are derived. :func:`install` memoizes each parser's
  result for a (text, rule) pair. The parse tree is only read by textworld's converters, which
  build fresh objects from it on every call.
- **Deep copies of each derivation context.** ``copy_context`` deep-copies the context's
  variable and mapping dicts, and with them every entity record reachable from them.
  Derivation only rebinds keys in those dicts. Its evaluated expressions (ALFWorld's grammar
  has ``{o.name}``, ``{r.name or r.id}``, ``{o.indefinite}`` and the like) read the records
  and never change them. So copying the dicts and sharing their values gives the same text.
- **Translating the same problem four times per reset.** Loading a game and resetting it each
  build a state that translates the game's PDDL to SAS twice (plain, and optimized for the
  planner). The translation is a pure function of the domain and problem text, and the state
  only reads the translated task. A small per-process LRU cache keeps the last few.

With all three, a step takes 4 ms and a reset about half as long as before.
``tests/test_textworld_caches.py`` checks that every observation, admissible-action list, reward and
ending equals plain textworld's. The caches are installed once per process and only on the textworld
version they were checked against (:data:`CHECKED_VERSION`). On another version,
:func:`install` logs that it left the engine as it is.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

CHECKED_VERSION = "1.7.0"
"""The textworld release whose internals these caches were written and tested against."""
TRANSLATIONS_KEPT = 8
"""PDDL-to-SAS translations kept per process (an environment worker cycles through a few games)."""
PARSES_KEPT = 4096
"""Parse trees of grammar templates and logic queries kept per parser (small; 30 ALFWorld games needed 103)."""
GAME_GRAMMARS_KEPT = 8
"""Parse trees of whole game grammars kept (one per game, about 0.3 MB each)."""

_logger = logging.getLogger(__name__)
_installed: bool | None = None
"""None until :func:`install` ran in this process; then whether the caches are in place."""


class _MemoizingParser:
    """A tatsu parser whose results for (text, rule_name) are kept; calls with other options go to the parser."""

    def __init__(self, parser: Any, kept: int) -> None:
        self._parser = parser
        self._parse = functools.lru_cache(maxsize=kept)(self._parse_uncached)

    def _parse_uncached(self, text: str, rule_name: str) -> Any:
        return self._parser.parse(text, rule_name=rule_name)

    def parse(self, text: str, /, **settings: Any) -> Any:
        options = {key: value for key, value in settings.items() if key != "rule_name"}
        if "rule_name" not in settings or any(options.values()):  # a whole document, tracing, a file name
            return self._parser.parse(text, **settings)
        return self._parse(text, settings["rule_name"])


def _context_copy(context: dict[str, Any]) -> dict[str, Any]:
    """A derivation context whose variable and mapping dicts are copies holding the same records."""
    copied = dict(context)
    copied["variables"] = dict(context["variables"])
    copied["mapping"] = dict(context["mapping"])
    return copied


def _memoized_translation(translate: Any) -> Any:
    """``fast_downward.pddl2sas`` with its results for (domain, problem, optimize) kept when not verbose."""
    kept = functools.lru_cache(maxsize=TRANSLATIONS_KEPT)(
        lambda domain, problem, optimize: translate(domain, problem, optimize=optimize)
    )

    @functools.wraps(translate)
    def pddl2sas(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
        if verbose:
            return translate(domain, problem, verbose=True, optimize=optimize)
        return kept(domain, problem, bool(optimize))

    return pddl2sas


def leave_out() -> None:
    """Keep the caches out of this process, to compare with plain textworld; call before the first game starts."""
    global _installed
    if _installed:
        raise RuntimeError("the textworld engine caches are already in place in this process")
    _installed = False


def install() -> bool:
    """Put the caches in place in this process (once, unless :func:`leave_out` came first); return whether
    they are in place."""
    global _installed
    if _installed is not None:
        return _installed
    import fast_downward
    import textworld
    import textworld.envs.pddl.logic as pddl_logic
    import textworld.envs.pddl.textgen as textgen
    import textworld.logic as logic

    if textworld.__version__ != CHECKED_VERSION:
        _logger.info(
            "textworld %s: ALFWorld engine caches not installed (checked against %s); steps are slower, "
            "results the same",
            textworld.__version__,
            CHECKED_VERSION,
        )
        _installed = False
        return False
    for module, kept in ((logic, PARSES_KEPT), (textgen, PARSES_KEPT), (pddl_logic, GAME_GRAMMARS_KEPT)):
        module._PARSER = _MemoizingParser(module._PARSER, kept)
    textgen.copy_context = _context_copy
    fast_downward.pddl2sas = _memoized_translation(fast_downward.pddl2sas)
    _installed = True
    return True
