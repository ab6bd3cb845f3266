"""WebShop's goals (what to buy, with which options, under which price) and their train/validation/test split."""

from __future__ import annotations

import bisect
import itertools
import random
from collections import defaultdict
from collections.abc import Sequence

from prism_agents.environments.webshop.catalog import GOAL_KINDS, Catalog, WebShopDataError

GOAL_SEED = 42
SHUFFLE_SEED = 233
"""The two seeds behind the goal list.

WebShop draws every product's price (uniform inside a price range, in
``load_products``) and then every goal's price limit (in ``goal.py``) from
Python's global generator, which it never seeds: its own goal list changes from
run to run. Its simulated server then seeds the generator with 233 and shuffles
the goal list. (verl-agent's copy seeds the generator in its environment's
constructor, with its ``seed`` argument, 42 by default.) We replay both streams with ``random.Random`` instances (so building goals
leaves the global generator alone): ``environment.params.goal_seed`` (default
:data:`GOAL_SEED`) for prices and limits, :data:`SHUFFLE_SEED` for the shuffle.
"""

GOAL_SAMPLINGS = ("weighted", "uniform")
"""How a goal is drawn when ``reset()`` names no task (``environment.params.goal_sampling``)."""

PRICE_STEPS = [10.0 * i for i in range(1, 100)]
"""The price limits a goal can get: $10 to $990 in $10 steps."""

NO_PRICE_LIMIT = 1000000
"""``price_upper`` of a goal whose product costs too much for two price steps above it."""

SPLIT_NAMES = ("test", "validation", "train")
"""Splits of the shuffled goal list, in list order.

WebShop's imitation-learning and RL baselines test on the first 500 shuffled goals,
validate on the next 1000 and train on the rest (``environment.params.test_goals``
and ``validation_goals`` default to that). Later agents (ReAct, verl-agent) also test
on the first 500 (verl-agent trains on all the rest). On a small catalog (like the
test fixture, with a few dozen goals) only ``test`` is non-empty unless the
boundaries are moved.
"""


def product_prices(products: list[dict], rng: random.Random) -> dict[str, float]:
    """Each product's price, in catalog order: 100.0 without pricing, the price, or a uniform draw inside a range."""
    prices: dict[str, float] = {}
    for product in products:
        pricing = product["pricing"]
        if not pricing:
            price = 100.0
        elif len(pricing) == 1:
            price = pricing[0]
        else:
            price = rng.uniform(*pricing[:2])
        prices[product["asin"]] = price
    return prices


def _price_limit(price: float, rng: random.Random) -> tuple[float, str]:
    """A goal's price limit and its instruction suffix: the larger of two of the four price steps above ``price``."""
    steps = [step for step in PRICE_STEPS if step > price][:4]
    if len(steps) < 2:
        return NO_PRICE_LIMIT, ""
    _, upper = sorted(rng.sample(steps, 2))
    return upper, f", and price lower than {upper:.2f} dollars"


def synthetic_goals(products: list[dict], prices: dict[str, float], rng: random.Random) -> list[dict]:
    """WebShop's synthetic goals: one per option combination of every product with an instruction.

    Each goal's ``weight`` is the mean, over its attributes, of one over the number
    of goals sharing that attribute.
    """
    goals: list[dict] = []
    attribute_counts: dict[str, int] = defaultdict(int)
    for product in products:
        instruction = product.get("instruction_text")
        if instruction is None:
            continue
        asin = product["asin"]
        attributes = product["instruction_attributes"]
        if not attributes:
            raise WebShopDataError(f"product {asin} has an instruction but no instruction_attributes")
        price_upper, price_text = _price_limit(prices[asin], rng)
        options = product["options"]
        names = sorted(options)
        for combination in itertools.product(*(options[name] for name in names)):
            goal_options = dict(zip(names, combination))
            option_text = ", and ".join(f"{name}: {value}" for name, value in goal_options.items())
            option_text = f" with {option_text}" if option_text else ""
            goals.append({
                "asin": asin,
                "category": product["category"],
                "query": product["query"],
                "name": product["Title"],
                "product_category": product["product_category"],
                "instruction_text": f"{instruction}{option_text}{price_text}",
                "attributes": attributes,
                "price_upper": price_upper,
                "goal_options": goal_options,
            })
            for attribute in attributes:
                attribute_counts[attribute] += 1
    for goal in goals:
        goal["weight"] = sum(1.0 / attribute_counts[a] for a in goal["attributes"]) / len(goal["attributes"])
    return goals


def human_goals(products: list[dict], prices: dict[str, float], rng: random.Random) -> list[dict]:
    """WebShop's human goals: one per crowd-written instruction that names attributes; weight 1."""
    goals: list[dict] = []
    for product in products:
        asin = product["asin"]
        for instruction in product.get("instructions", []):
            attributes = instruction["instruction_attributes"]
            if not attributes:
                continue
            price_upper, price_text = _price_limit(prices[asin], rng)
            goals.append({
                "asin": asin,
                "category": product["category"],
                "query": product["query"],
                "name": product["name"],
                "product_category": product["product_category"],
                "instruction_text": instruction["instruction"].strip(".") + price_text,
                "attributes": attributes,
                "price_upper": price_upper,
                "goal_options": instruction["instruction_options"],
                "weight": 1,
            })
    return goals


def build_goals(catalog: Catalog, kind: str, seed: int = GOAL_SEED) -> tuple[list[dict], dict[str, float]]:
    """The shuffled goals of ``kind`` (``"synthetic"`` or ``"human"``) and every product's price, as WebShop draws them
    after ``random.seed(seed)``.

    The catalog must have been loaded with the same goal kind.
    """
    if kind not in GOAL_KINDS:
        raise ValueError(f"unknown goal kind {kind!r}; known: {', '.join(GOAL_KINDS)}")
    loaded_synthetic = any("instruction_attributes" in product for product in catalog.products)
    if catalog.products and loaded_synthetic != (kind == "synthetic"):
        loaded = "synthetic" if loaded_synthetic else "human"
        raise ValueError(f"{kind} goals need a catalog loaded with goals={kind!r}; this one was loaded with goals={loaded!r}")
    rng = random.Random(seed)
    prices = product_prices(catalog.products, rng)
    make = synthetic_goals if kind == "synthetic" else human_goals
    goals = make(catalog.products, prices, rng)
    random.Random(SHUFFLE_SEED).shuffle(goals)
    return goals, prices


def split_goal_indices(num_goals: int, split: str, test_goals: int, validation_goals: int) -> range:
    """Indices of ``split``'s goals among ``num_goals`` shuffled goals (empty when the list ends before the split):
    the first ``test_goals`` are ``test``, the next ``validation_goals`` ``validation``, the rest ``train``."""
    train_start = test_goals + validation_goals
    bounds = {"test": (0, test_goals), "validation": (test_goals, train_start), "train": (train_start, num_goals)}
    if split not in bounds:
        raise ValueError(f"unknown goal split {split!r}; known: {', '.join(SPLIT_NAMES)}")
    start, end = bounds[split]
    return range(min(start, num_goals), min(end, num_goals))


def weighted_goal_index(weights: Sequence[float], draw: float) -> int:
    """The goal WebShop's server picks for ``draw``, a uniform number in ``[0, sum(weights)]``.

    Upstream (``utils.random_idx``) bisects the draw into the cumulative weights
    with a leading 0 and uses the insertion point as the goal index, clamped to the
    list: goal ``i`` is picked for draws in goal ``i - 1``'s share, goal 0 never
    (unless it is the only one) and the last goal for the last two shares. Kept as it is.
    """
    cumulative = [0.0, *itertools.accumulate(weights)]
    return min(bisect.bisect(cumulative, draw), len(cumulative) - 2)
