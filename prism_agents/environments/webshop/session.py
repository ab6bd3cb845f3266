"""One shopping session: WebShop's page transitions for ``search[...]`` and ``click[...]``.

The rules are those of WebShop's text environment and its simulated server:

- An action is ``name[argument]`` (the first ``[`` to the last ``]``); the
  argument is lower-cased. ``search[keywords]`` with non-empty keywords runs a
  search from any page (upstream does not check for the search bar, although it
  lists ``search`` only on the search page). ``click[x]`` works when ``x`` is a
  clickable of the current page (and not the search button). Anything else
  leaves the page as it is.
- A search shows page 1 of its results (the top 50 BM25 results, or what one of
  upstream's ``<r>``/``<a>``/``<c>``/``<q>`` prefixes lists: see
  :func:`~prism_agents.environments.webshop.search.find_products`; like upstream,
  every results page shown runs the search again, so ``<r>`` draws anew, from a
  stream seeded by the goal) and forgets the product and options chosen so far.
  ``Next >`` and ``< Prev`` page through the results.
- Clicking an ASIN opens that product; clicking an option value selects it.
  ``< Prev`` goes from a sub-page back to the item page and from the item page
  back to the results, which again forgets the product and its options.
  ``Back to Search`` starts over at the search page.
- ``Buy Now`` scores the product with the chosen options at the product's price
  and ends the session.

The session also keeps what upstream's ``text_rich`` pages mark: the products
opened since the last search page and the item page's URL (which holds the
chosen options).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Optional

from prism_agents.environments.webshop import pages
from prism_agents.environments.webshop.reward import PurchaseScore, score_purchase
from prism_agents.environments.webshop.search import find_products
from prism_agents.environments.webshop.shop import Shop

ACTION_PATTERN = re.compile(r"(.+)\[(.+)\]")
"""``name[argument]``, matched from the start of the action as WebShop parses it."""


@dataclass
class Purchase:
    """What was bought and how it scored."""

    asin: str
    """The product bought."""
    options: dict[str, str]
    """Option name -> the value selected."""
    price: float
    """Price paid."""
    score: PurchaseScore
    """WebShop's reward and its parts."""


@dataclass
class ShopSession:
    """The state of one episode: the goal, the page shown and what has been searched and chosen."""

    shop: Shop
    goal: dict
    spacy_model: str
    page: pages.Page = field(init=False)
    keywords: Optional[str] = None
    """Keywords of the last search (None before any)."""
    results: list[str] = field(default_factory=list)
    """ASINs the last search returned, best first."""
    page_number: int = 1
    """Results page shown (1-based)."""
    asin: Optional[str] = None
    """Product opened (upper-case ASIN), None when none."""
    options: dict[str, str] = field(default_factory=dict)
    """Options selected on the open product."""
    searches: int = 0
    """Searches run so far."""
    rng: random.Random = field(init=False, repr=False)
    """Draws ``<r>`` searches; seeded by the goal, so that an episode replays the same way."""
    opened: set[str] = field(default_factory=set)
    """ASINs opened since the search page was last shown (upstream's session ``asins``)."""
    purchase: Optional[Purchase] = None
    """Set by ``Buy Now``; the session is over from then on."""

    def __post_init__(self) -> None:
        self.page = pages.search_page(self.instruction)
        self.rng = random.Random(f"{self.goal['asin']}:{self.instruction}")

    @property
    def instruction(self) -> str:
        return self.goal["instruction_text"]

    def act(self, action: str) -> bool:
        """Apply ``action``; True when it changed the page (False: not understood or not clickable here)."""
        match = ACTION_PATTERN.match(action)
        if match is None:
            return False
        name, argument = match.group(1), match.group(2).lower()
        if name == "search" and argument:
            self._search(argument)
            return True
        if name == "click" and argument in self.page.clickables and argument != "search":
            self._click(argument)
            return True
        return False

    # -- transitions ----------------------------------------------------------------------------

    def _search(self, keywords: str) -> None:
        self.keywords = keywords
        self.searches += 1
        self._show_results(1)

    def _show_results(self, page_number: int) -> None:
        # Upstream searches again for every results page it shows (so ``<r>`` draws anew each time).
        self.results = find_products(self.keywords, self.shop.index, self.shop.catalog, self.rng)
        self.page_number = page_number
        self.asin, self.options = None, {}
        asins = self.shop.index.page(self.results, page_number)
        products = [self.shop.catalog.by_asin[asin] for asin in asins]
        self.page = pages.results_page(self.instruction, products, page_number, len(self.results), frozenset(self.opened))

    def _click(self, clickable: str) -> None:
        kind = self.page.kind
        if clickable == pages.BUY_NOW:
            self._buy()
        elif clickable == pages.BACK_TO_SEARCH:
            self.keywords, self.results, self.asin, self.options = None, [], None, {}
            self.opened = set()
            self.page = pages.search_page(self.instruction)
        elif clickable == pages.NEXT_PAGE and kind == "results":
            self._show_results(self.page_number + 1)
        elif clickable == pages.PREV_PAGE and kind == "results":
            self._show_results(self.page_number - 1)
        elif clickable == pages.PREV_PAGE and kind in pages.SUB_PAGES:
            self._show_item()
        elif clickable == pages.PREV_PAGE and kind == "item":
            self._show_results(self.page_number)
        elif clickable in pages.SUB_PAGES:
            self.page = pages.sub_page(self.instruction, self.shop.catalog.by_asin[self.asin], clickable)
        elif kind == "results":
            self.asin = clickable.upper()
            self.opened.add(self.asin)
            self._show_item()
        else:
            self.options[self.page.option_of_value[clickable]] = clickable
            self._show_item()

    def _show_item(self) -> None:
        url_tail = pages.item_url_tail(self.asin, self.keywords or "", self.page_number, self.options)
        self.page = pages.item_page(self.instruction, self.shop.catalog.by_asin[self.asin], url_tail)

    def _buy(self) -> None:
        product = self.shop.catalog.by_asin[self.asin]
        price = self.shop.prices[self.asin]
        options = dict(self.options)
        score = score_purchase(product, self.goal, price, options, spacy_model=self.spacy_model)
        self.purchase = Purchase(self.asin, options, price, score)
        self.page = pages.done_page(score.total, self.asin, options)
