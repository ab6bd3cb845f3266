"""WebShop's pages in text mode: the text each page shows and what can be clicked on it.

An observation is the page's visible text pieces joined by ``" [SEP] "``, as
WebShop's ``observation_mode="text"`` renders its HTML templates (the version at
the head of the upstream repository). The pages read:

- search: ``WebShop [SEP] Instruction: [SEP] <instruction> [SEP] Search``
- results: ``Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] Page 2 (Total results: 50)
  [SEP] < Prev [SEP] Next > [SEP] <ASIN> [SEP] <title> [SEP] <price> ...`` (10 products a page;
  ``< Prev`` from page 2 on; ``Next >`` always, as upstream shows it even on the last page)
- item: ``Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] < Prev [SEP] <option name>
  [SEP] <value> ... [SEP] <title> [SEP] Price: <price> [SEP] Rating: <rating> [SEP] Description
  [SEP] Features [SEP] Reviews [SEP] Buy Now``
- description / features / reviews: the instruction, ``Back to Search [SEP] < Prev`` and the
  product's description, its bullet points, or each review's ``"title"``, score and text
- done: ``Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] <reward>``
  (upstream's done page also carries a hidden block with the purchase and the target; it is
  left out here because the episode is over)

Clickables follow WebShop's ``get_available_actions``: the page's button texts
lower-cased, then the product links (ASINs, lower-cased), then the option
values of the item page; only the search page has the search bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

SEPARATOR = " [SEP] "
"""What joins the visible text pieces of a page (WebShop's simple text mode)."""
BACK_TO_SEARCH = "back to search"
NEXT_PAGE = "next >"
PREV_PAGE = "< prev"
BUY_NOW = "buy now"
SUB_PAGES = ("description", "features", "reviews")
"""Item sub-pages reached from the item page's buttons (WebShop's Attributes page is hidden by default)."""


@dataclass(frozen=True)
class Page:
    """One rendered page: its visible text, its clickables and which option each option value sets."""

    kind: str
    """``search``, ``results``, ``item``, one of :data:`SUB_PAGES` or ``done``."""
    texts: tuple[str, ...]
    """Visible text pieces in document order."""
    clickables: tuple[str, ...]
    """What ``click[...]`` accepts here, as WebShop keys it (lower-cased buttons and ASINs, option values)."""
    has_search_bar: bool = False
    """Whether ``search[...]`` is offered (the search page only)."""
    option_of_value: dict[str, str] = field(default_factory=dict)
    """Item page: option value -> the option it sets (a value shared by two options sets the later one, as upstream)."""

    @property
    def observation(self) -> str:
        """The page as the agent reads it."""
        return SEPARATOR.join(self.texts)

    def available_actions(self) -> list[str]:
        """Actions in the grammar the agent writes: ``search[<keywords>]`` when there is a search bar, then ``click[...]``."""
        actions = ["search[<keywords>]"] if self.has_search_bar else []
        return actions + [f"click[{clickable}]" for clickable in self.clickables if clickable != "search"]


def _header(instruction: str) -> list[str]:
    return ["Instruction:", instruction]


def search_page(instruction: str) -> Page:
    """The start page: the instruction and the search bar."""
    return Page("search", tuple(_visible(["WebShop", "Instruction:", instruction, "Search"])), ("search",), has_search_bar=True)


def results_page(instruction: str, products: Sequence[dict], page: int, total: int) -> Page:
    """Page ``page`` (1-based) of search results: ``products`` are the page's products, ``total`` all results."""
    buttons = ["Back to Search"] + (["< Prev"] if page > 1 else []) + ["Next >"]
    texts = _header(instruction) + buttons[:1] + [f"Page {page} (Total results: {total})"] + buttons[1:]
    for product in products:
        texts += [product["asin"], product["Title"], product["Price"]]
    clickables = [button.lower() for button in buttons] + [product["asin"].lower() for product in products]
    return Page("results", tuple(_visible(texts)), tuple(dict.fromkeys(clickables)))


def item_page(instruction: str, product: dict) -> Page:
    """A product's page: its options, title, price and rating, the sub-page buttons and ``Buy Now``."""
    texts = _header(instruction) + ["Back to Search", "< Prev"]
    option_of_value: dict[str, str] = {}
    for name, values in product["options"].items():
        texts.append(name)
        texts += values
        for value in values:
            option_of_value[value] = name
    texts += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}"]
    buttons = ["Back to Search", "< Prev", "Description", "Features", "Reviews", "Buy Now"]
    texts += buttons[2:]
    clickables = dict.fromkeys([button.lower() for button in buttons] + list(option_of_value))
    return Page("item", tuple(_visible(texts)), tuple(clickables), option_of_value=option_of_value)


def sub_page(instruction: str, product: dict, kind: str) -> Page:
    """The description, features or reviews page of ``product``."""
    if kind == "description":
        body = [product["Description"]]
    elif kind == "features":
        body = list(product["BulletPoints"])
    elif kind == "reviews":
        body = [piece for review in product["Reviews"] for piece in _review_texts(review)]
    else:
        raise ValueError(f"unknown WebShop sub-page {kind!r}; known: {', '.join(SUB_PAGES)}")
    texts = _header(instruction) + ["Back to Search", "< Prev"] + body
    return Page(kind, tuple(_visible(texts)), ("back to search", "< prev"))


def done_page(reward: float) -> Page:
    """The page after ``click[buy now]``: the purchase's score."""
    return Page("done", ("Thank you for shopping with us!", "Your score (min 0.0, max 1.0)", str(reward)), ())


def _review_texts(review: dict) -> list[str]:
    return [f'"{review.get("title", "")}"', str(review.get("score", "")), str(review.get("body", ""))]


def _visible(texts: Sequence[str]) -> list[str]:
    """Pieces as a browser's text extraction yields them: stripped, empty ones dropped."""
    return [text.strip() for text in texts if text and text.strip()]
