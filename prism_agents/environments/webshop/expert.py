"""The oracle expert: reaches the goal's product through search and clicks, chooses the goal's options, buys.

It knows the goal's product (its ASIN) but acts only through the page's own
actions, so its demonstrations are episodes a policy could play. It searches
the goal's instruction text; when the product is not among the 50 results it
goes back and searches the goal's product query; when that fails too it has no
action (the demonstration is recorded as failed: search did not surface the
product). On the results it pages forward to the product, opens it, clicks each
goal option value that sets that option, and buys.
"""

from __future__ import annotations

from typing import Optional

from prism_agents.environments.webshop import pages
from prism_agents.environments.webshop.search import PRODUCTS_PER_PAGE
from prism_agents.environments.webshop.session import ShopSession


def search_queries(goal: dict) -> list[str]:
    """What the oracle searches, in order: the instruction text, then the goal product's query."""
    return list(dict.fromkeys([goal["instruction_text"].lower(), goal["query"]]))


def wanted_options(goal: dict, page: pages.Page) -> list[tuple[str, str]]:
    """(option, value) pairs of the goal that clicking the value on ``page`` selects."""
    goal_options = goal["goal_options"]
    pairs = goal_options.items() if isinstance(goal_options, dict) else ((None, value) for value in goal_options)
    chosen = []
    for name, value in pairs:
        owner = page.option_of_value.get(value)
        if owner is not None and (name is None or owner == name):
            chosen.append((owner, value))
    return chosen


def oracle_action(session: ShopSession) -> tuple[Optional[str], Optional[str]]:
    """The oracle's next action for ``session``, or ``(None, why)`` when it has none."""
    goal, page = session.goal, session.page
    target = goal["asin"]
    if page.kind == "search":
        queries = search_queries(goal)
        if session.searches >= len(queries):
            return None, f"search did not surface the goal product {target} (tried: {'; '.join(queries)})"
        return f"search[{queries[session.searches]}]", None
    if page.kind == "results":
        if target not in session.results:
            return f"click[{pages.BACK_TO_SEARCH}]", None
        target_page = session.results.index(target) // PRODUCTS_PER_PAGE + 1
        if target_page > session.page_number:
            return f"click[{pages.NEXT_PAGE}]", None
        if target_page < session.page_number:
            return f"click[{pages.PREV_PAGE}]", None
        return f"click[{target.lower()}]", None
    if page.kind == "item":
        if session.asin != target:
            return f"click[{pages.PREV_PAGE}]", None
        for name, value in wanted_options(goal, page):
            if session.options.get(name) != value:
                return f"click[{value}]", None
        return f"click[{pages.BUY_NOW}]", None
    if page.kind in pages.SUB_PAGES:
        return f"click[{pages.PREV_PAGE}]", None
    return None, "the session is over"
