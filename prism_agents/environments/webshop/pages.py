"""WebShop's pages: the text nodes each of upstream's HTML templates yields and what can be clicked on it.

A page is the sequence of visible text nodes that BeautifulSoup's ``html.parser``
finds in the page upstream renders (princeton-nlp/WebShop at 64fa2a5, its
``templates/*.html``), each with the template's own whitespace around the value
and its role: a button, an option label, a product link or plain text.
:mod:`~prism_agents.environments.webshop.observation` turns it into WebShop's
``text`` or ``text_rich`` observation. In ``text`` mode the pages read:

- search: ``WebShop [SEP] Instruction: [SEP] <instruction> [SEP] Search``
- results: ``Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] Page 2 (Total results: 50)
  [SEP] < Prev [SEP] Next > [SEP] <ASIN> [SEP] <title> [SEP] <price> ...`` (10 products a page;
  ``< Prev`` from page 2 on; ``Next >`` always, as upstream shows it even on the last page)
- item: ``Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] < Prev [SEP] <option name>
  [SEP] <value> ... [SEP] <title> [SEP] Price: <price> [SEP] Rating: <rating> [SEP] Description
  [SEP] Features [SEP] Reviews [SEP] Buy Now``
- description / features / reviews: the instruction, ``Back to Search [SEP] < Prev`` and the
  product's description, its bullet points, or each review's ``"title"``, score and text
- done: ``Thank you for shopping with us! [SEP] Your code: [SEP] None [SEP] ...`` and the block that
  upstream's template hides with CSS but its text conversion keeps (the purchase's asin, options and
  empty target fields), then ``Your score (min 0.0, max 1.0) [SEP] <reward> [SEP] Reward Details [SEP] None``

A node that is nothing but ASCII whitespace becomes ``"\\n"`` when it holds a newline
(and is then dropped) and ``" "`` otherwise (kept: an empty bullet point shows as an
empty piece), as BeautifulSoup collapses such strings.

Clickables follow WebShop's ``get_available_actions``: the page's button texts
lower-cased, then the product links (ASINs, lower-cased), then the option
values of the item page; only the search page has the search bar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SEPARATOR = " [SEP] "
"""What joins the visible text pieces of a page (WebShop's simple text mode)."""
BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
BUY_NOW = "buy now"
SUB_PAGES = ("description", "features", "reviews")
"""Item sub-pages reached from the item page's buttons (WebShop's Attributes page is hidden by default)."""
NODE_ROLES = ("text", "button", "option", "product")
"""What a text node sits in: plain text, a ``<button>``, an option ``<label>`` or a product link."""
_ASCII_SPACES = " \n\t\f\r"
"""The characters BeautifulSoup treats as whitespace when it collapses a whitespace-only string."""


@dataclass(frozen=True)
class Node:
    """One visible text node of a page."""

    text: str
    """The node's text as BeautifulSoup holds it (whitespace-only strings already collapsed)."""
    role: str = "text"
    """One of :data:`NODE_ROLES`."""
    clicked: bool = False
    """An option whose value the page's URL carries, or a product opened in this session (``text_rich`` marks them)."""


@dataclass(frozen=True)
class Page:
    """One rendered page: its text nodes, its clickables and which option each option value sets."""

    kind: str
    """``search``, ``results``, ``item``, one of :data:`SUB_PAGES` or ``done``."""
    nodes: tuple[Node, ...]
    """Visible text nodes in document order (``"\\n"`` nodes, which every mode skips, left out)."""
    clickables: tuple[str, ...]
    """What ``click[...]`` accepts here, as WebShop keys it (lower-cased buttons and ASINs, option values)."""
    has_search_bar: bool = False
    """Whether ``search[...]`` is offered (the search page only)."""
    option_of_value: dict[str, str] = field(default_factory=dict)
    """Item page: option value -> the option it sets (a value shared by two options sets the later one, as upstream)."""

    @property
    def texts(self) -> tuple[str, ...]:
        """The pieces of the ``text`` observation: each node stripped (an all-space node gives ``""``)."""
        return tuple(node.text.strip() for node in self.nodes)

    @property
    def observation(self) -> str:
        """The page in WebShop's ``text`` mode."""
        return SEPARATOR.join(self.texts)

    def available_actions(self) -> list[str]:
        """Actions in the grammar the agent writes: ``search[<keywords>]`` when there is a search bar, then ``click[...]``."""
        actions = ["search[<keywords>]"] if self.has_search_bar else []
        return actions + [f"click[{clickable}]" for clickable in self.clickables if clickable != "search"]


def _nodes(*pieces: str | Node) -> tuple[Node, ...]:
    """Nodes of ``pieces`` (a str is plain text), collapsed as BeautifulSoup does; empty and newline-only ones dropped."""
    nodes = []
    for piece in pieces:
        node = piece if isinstance(piece, Node) else Node(piece)
        if node.text and not node.text.strip(_ASCII_SPACES):
            node = Node("\n" if "\n" in node.text else " ", node.role, node.clicked)
        if node.text and node.text != "\n":
            nodes.append(node)
    return tuple(nodes)


def _button(text: str) -> Node:
    return Node(text, "button")


def _header(instruction: str) -> list[str | Node]:
    return ["Instruction:", instruction, _button("Back to Search")]


def search_page(instruction: str) -> Page:
    """The start page: the instruction and the search bar."""
    nodes = _nodes("WebShop", "Instruction: ", instruction, _button("Search"))
    return Page("search", nodes, ("search",), has_search_bar=True)


def results_page(instruction: str, products: Sequence[dict], page: int, total: int, opened: frozenset[str] = frozenset()) -> Page:
    """Page ``page`` (1-based) of search results: ``products`` are the page's products, ``total`` all results;
    ``opened`` holds the ASINs opened since the last search page (``text_rich`` marks them)."""
    buttons = ["Back to Search"] + (["< Prev"] if page > 1 else []) + ["Next >"]
    pieces: list[str | Node] = _header(instruction) + [f"Page {page} (Total results: {total})"]
    pieces += [_button(button) for button in buttons[1:]]
    for product in products:
        pieces += [Node(product["asin"], "product", product["asin"] in opened), product["Title"], product["Price"]]
    clickables = [button.lower() for button in buttons] + [product["asin"].lower() for product in products]
    return Page("results", _nodes(*pieces), tuple(dict.fromkeys(clickables)))


def item_page(instruction: str, product: dict, url_tail: str = "") -> Page:
    """A product's page: its options, title, price and rating, the sub-page buttons and ``Buy Now``.

    ``url_tail`` is the end of the page's URL in upstream's simulated server (see
    :func:`item_url_tail`); an option label counts as clicked when the URL holds its value in double quotes.
    """
    pieces: list[str | Node] = _header(instruction) + [_button("< Prev")]
    option_of_value: dict[str, str] = {}
    for name, values in product["options"].items():
        pieces.append(name)
        pieces += [Node(value, "option", f'"{value}"' in url_tail) for value in values]
        for value in values:
            option_of_value[value] = name
    pieces += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}"]
    buttons = ["Back to Search", "< Prev", "Description", "Features", "Reviews", "Buy Now"]
    pieces += [_button(button) for button in buttons[2:]]
    clickables = dict.fromkeys([button.lower() for button in buttons] + list(option_of_value))
    return Page("item", _nodes(*pieces), tuple(clickables), option_of_value=option_of_value)


def item_url_tail(asin: str, keywords: str, page: int, options: Mapping[str, str]) -> str:
    """The part of upstream's item-page URL after the session id: ``/<ASIN>/<keywords with + for spaces>/<page>/<options as JSON>``."""
    return f"/{asin}/{keywords.replace(' ', '+')}/{page}/{json.dumps(dict(options))}"


def sub_page(instruction: str, product: dict, kind: str) -> Page:
    """The description, features or reviews page of ``product``."""
    if kind == "description":
        body = [product["Description"]]
    elif kind == "features":
        body = [f" {point}" for point in product["BulletPoints"]]
    elif kind == "reviews":
        body = [piece for review in product["Reviews"] for piece in _review_texts(review)]
    else:
        raise ValueError(f"unknown WebShop sub-page {kind!r}; known: {', '.join(SUB_PAGES)}")
    nodes = _nodes(*_header(instruction), _button("< Prev"), *body)
    return Page(kind, nodes, ("back to search", "< prev"))


def done_page(reward: float, asin: str, options: Mapping[str, str]) -> Page:
    """The page after ``click[buy now]``: upstream's done template as its simulated server fills it.

    The server passes only the asin, the options and the reward, so the MTurk code, the
    purchased product's fields and the goal's read ``None`` or stay empty.
    """
    purchased = ["asin", asin, "options", _tojson(options)]
    purchased += [piece for label in ("attrs", "category", "query", "product category") for piece in (label, "None")]
    target = ["asin", "options", "attrs", "price upper", "instuction text", "category", "product category", "query"]
    nodes = _nodes(
        "Thank you for shopping with us!", "Your code: ", "None", " (Paste it in your MTurk interface.)",
        "Purchased", *purchased, "Target", *target, "Goal ", "None", "Reward",
        "Your score (min 0.0, max 1.0)", str(reward), "Reward Details ", "None",
    )
    return Page("done", nodes, ())


def _tojson(value: Mapping[str, str]) -> str:
    """Flask 2.1's ``tojson`` filter: sorted keys, ASCII only, ``<``, ``>``, ``&`` and ``'`` as ``\\u`` escapes."""
    text = json.dumps(dict(value), sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(char, escape)
    return text


def _review_texts(review: dict) -> list[str]:
    return [f'"{review.get("title", "")}"', str(review.get("score", "")), str(review.get("body", ""))]
