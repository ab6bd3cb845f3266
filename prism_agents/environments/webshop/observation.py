"""WebShop's observation modes and its history of earlier observations and actions.

Two of upstream's modes (``WebAgentTextEnv(observation_mode=...)``):

- ``text``: the page's text nodes stripped and joined by ``" [SEP] "``.
- ``text_rich``: one line per text node; buttons and product links as
  ``[button] <text> [button_]``, option values as ``  [button] <value> [button_]``; an
  option the page's URL holds and a product opened since the last search page as
  ``[clicked button] ... [clicked button_]``, and every clicked option also puts
  ``You have clicked <value>.`` at the top of the page. Product links start a new
  line; plain text keeps the template's spaces.

With ``num_prev_obs`` / ``num_prev_actions`` above 0, a step's observation is
preceded by that many earlier observations and actions, oldest first, all joined
by ``" [SEP] "`` (``obs[t-2] [SEP] action[t-1] [SEP] obs[t-1] [SEP] action[t] [SEP] obs[t]``),
as upstream's ``step`` builds it; every action counts, valid or not, and
``reset`` returns the page alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prism_agents.environments.webshop.pages import SEPARATOR, Page

OBSERVATION_MODES = ("text", "text_rich")


def render(page: Page, mode: str) -> str:
    """``page`` as the agent reads it in ``mode`` (one of :data:`OBSERVATION_MODES`)."""
    if mode == "text":
        return page.observation
    if mode != "text_rich":
        raise ValueError(f"unknown WebShop observation mode {mode!r}; known: {', '.join(OBSERVATION_MODES)}")
    clicked_lines, lines = [], []
    for node in page.nodes:
        mark = "clicked button" if node.clicked else "button"
        if node.role == "button":
            lines.append(f"[button] {node.text} [button_]")
        elif node.role == "option":
            lines.append(f"  [{mark}] {node.text} [{mark}_]")
            if node.clicked:
                clicked_lines.insert(0, f"You have clicked {node.text}.")
        elif node.role == "product":
            lines.append(f"\n[{mark}] {node.text} [{mark}_]")
        else:
            lines.append(node.text)
    return "".join(f"{line}\n" for line in clicked_lines + lines)


@dataclass
class History:
    """The earlier observations and actions a step's observation carries (upstream's ``prev_obs`` / ``prev_actions``)."""

    num_prev_obs: int = 0
    """Earlier observations shown before the current one."""
    num_prev_actions: int = 0
    """Earlier actions shown (the one just taken included)."""
    observations: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def start(self, observation: str) -> str:
        """Begin an episode at ``observation``; the first observation is the page alone."""
        self.observations, self.actions = [observation], []
        return observation

    def step(self, action: str, observation: str) -> str:
        """Record ``action`` and the page it led to; return the observation with its history."""
        self.actions.append(action)
        pieces = [observation]
        for back in range(1, 1 + max(self.num_prev_obs, self.num_prev_actions)):
            if back <= min(len(self.actions), self.num_prev_actions):
                pieces.append(self.actions[-back])
            if back <= min(len(self.observations), self.num_prev_obs):
                pieces.append(self.observations[-back])
        self.observations.append(observation)
        return SEPARATOR.join(reversed(pieces))
