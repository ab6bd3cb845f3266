"""WebShop's data side: loading the catalog, building goals and splits, and searching products.

Most tests use the small hand-written catalog in ``tests/fixtures/webshop``; the
tests marked with ``shared_data`` use WebShop's 1000-product catalog and are
skipped when it is absent (set ``PRISM_WEBSHOP_DATA`` to its folder).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from prism_agents.environments.webshop.params import WebShopParams
from prism_agents.environments.webshop import search as search_module
from prism_agents.environments.webshop.catalog import (
    CatalogFiles,
    WebShopDataError,
    catalog_status,
    find_catalog_files,
    load_catalog,
)
from prism_agents.environments.webshop.goals import (
    GOAL_SEED,
    SHUFFLE_SEED,
    SPLIT_NAMES,
    build_goals,
    product_prices,
    split_goal_indices,
    synthetic_goals,
)
from prism_agents.environments.webshop.search import (
    PRODUCTS_PER_PAGE,
    SEARCH_RETURN_N,
    SearchIndex,
    analyze,
    default_index_cache_dir,
    product_document,
)

FIXTURE = Path(__file__).parent / "fixtures" / "webshop"
FIXTURE_PRODUCTS = "fixture_products.json"
FIXTURE_ATTRIBUTES = "fixture_attributes.json"
FIXTURE_ASINS = [f"B0FX{n:06d}" for n in range(1, 17)]


def fixture_files(folder: Path = FIXTURE) -> CatalogFiles:
    return CatalogFiles(
        products=folder / FIXTURE_PRODUCTS, attributes=folder / FIXTURE_ATTRIBUTES, human_instructions=None, reviews=None
    )


def shared_data_dir() -> Path:
    configured = os.environ.get("PRISM_WEBSHOP_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data" / "webshop"


@pytest.fixture(scope="module")
def fixture_catalog():
    return load_catalog(fixture_files())


@pytest.fixture(scope="module")
def fixture_index(fixture_catalog, tmp_path_factory):
    return SearchIndex.open(fixture_catalog, tmp_path_factory.mktemp("index"))


# ---------------------------------------------------------------- files and loading


def test_find_catalog_files_names_the_missing_file_and_how_to_get_it(tmp_path):
    with pytest.raises(WebShopDataError, match=r"items_shuffle_1000\.json.*setup\.sh -d small"):
        find_catalog_files(tmp_path, "1000")
    (tmp_path / "items_shuffle.json").write_text("[]")
    with pytest.raises(WebShopDataError, match=r"items_ins_v2\.json.*setup\.sh -d all"):
        find_catalog_files(tmp_path, "full")
    with pytest.raises(ValueError, match="known: 1000, full"):
        find_catalog_files(tmp_path, "100")


def test_find_catalog_files_finds_the_optional_files(tmp_path):
    shutil.copy(FIXTURE / FIXTURE_PRODUCTS, tmp_path / "items_shuffle_1000.json")
    shutil.copy(FIXTURE / FIXTURE_ATTRIBUTES, tmp_path / "items_ins_v2_1000.json")
    files = find_catalog_files(tmp_path, "1000")
    assert (files.products.name, files.attributes.name) == ("items_shuffle_1000.json", "items_ins_v2_1000.json")
    assert files.human_instructions is None and files.reviews is None
    (tmp_path / "items_human_ins.json").write_text("{}")
    (tmp_path / "reviews.json").write_text("[]")
    files = find_catalog_files(tmp_path, "1000")
    assert files.human_instructions == tmp_path / "items_human_ins.json"
    assert files.reviews == tmp_path / "reviews.json"


def test_catalog_status_reports_present_and_missing_files(tmp_path):
    assert "does not exist" in catalog_status(tmp_path / "nowhere")[0]
    shutil.copy(FIXTURE / FIXTURE_PRODUCTS, tmp_path / "items_shuffle_1000.json")
    shutil.copy(FIXTURE / FIXTURE_ATTRIBUTES, tmp_path / "items_ins_v2_1000.json")
    lines = catalog_status(tmp_path)
    assert lines[0] == f"WebShop data folder: {tmp_path}"
    small = next(line for line in lines if line.startswith("catalog '1000'"))
    assert "ready" in small and "items_shuffle_1000.json (" in small and "KiB)" in small
    full = next(line for line in lines if line.startswith("catalog 'full'"))
    assert "missing items_shuffle.json, items_ins_v2.json" in full and "-d all" in full
    human = next(line for line in lines if "items_human_ins.json missing" in line)
    assert "goals: human" in human and "setup.sh" in human and "14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O" in human
    assert any("reviews.json missing" in line for line in lines)


def test_loader_skips_bad_and_repeated_asins(fixture_catalog):
    assert [p["asin"] for p in fixture_catalog.products] == FIXTURE_ASINS
    assert list(fixture_catalog.by_asin) == FIXTURE_ASINS
    # The first listing of a repeated asin is kept.
    assert fixture_catalog.by_asin["B0FX000003"]["Title"].startswith("Tidewave Portable Bluetooth Speaker")
    assert len(fixture_catalog.fingerprint) == 64


def test_loader_processes_fields_like_webshop(fixture_catalog):
    earbuds = fixture_catalog.by_asin["B0FX000001"]
    assert earbuds["Title"] == earbuds["name"]
    assert earbuds["Title"].startswith("Auricle Pro Wireless Earbuds with Charging Case")
    assert earbuds["Description"] == earbuds["full_description"]
    assert (earbuds["pricing"], earbuds["Price"]) == ([39.99], "$39.99")
    assert earbuds["options"] == {"color": ["black", "white", "navy | blue"]}
    assert earbuds["option_to_image"]["navy | blue"] == "https://images.example.com/webshop-fixture/navy-blue.jpg"
    assert earbuds["Attributes"] == ["noise cancelling", "charging case", "long battery life"]
    assert earbuds["instruction_text"] == "i need noise cancelling wireless earbuds with a charging case"
    assert earbuds["instruction_attributes"] == ["noise cancelling", "charging case"]
    assert earbuds["query"] == "wireless earbuds"
    assert earbuds["MainImage"] == "https://images.example.com/webshop-fixture/B0FX000001-main.jpg"
    assert (earbuds["Reviews"], earbuds["Rating"]) == ([], "N.A.")
    assert earbuds["BulletPoints"][0] == "ACTIVE NOISE CANCELLING: two microphones per bud cancel low hums and chatter "
    assert earbuds["page"] == 3 and earbuds["average_rating"] == 4.4
    assert not {"brand", "list_price", "seller_name"} & earbuds.keys()

    products = fixture_catalog.by_asin
    assert (products["B0FX000002"]["pricing"], products["B0FX000002"]["Price"]) == ([19.99, 24.99], "$19.99 to $24.99")
    assert (products["B0FX000003"]["pricing"], products["B0FX000003"]["Price"]) == ([45.0, 60.0], "$45.0 to $60.0")
    assert not {"product_information", "availability_status"} & products["B0FX000003"].keys()
    assert products["B0FX000003"]["options"] == {"color": ["ocean blue", "sunset orange"], "size": ["mini", "standard"]}
    assert (products["B0FX000004"]["pricing"], products["B0FX000004"]["Price"]) == ([985.0], "$985.0")
    assert products["B0FX000004"]["options"] == {} and products["B0FX000004"]["option_to_image"] == {}
    assert (products["B0FX000005"]["pricing"], products["B0FX000005"]["Price"]) == ([100.0], "$100.0")
    assert products["B0FX000005"]["instruction_text"] is None and products["B0FX000005"]["instruction_attributes"] is None
    assert products["B0FX000005"]["Attributes"] == ["fast charging", "usb-c"]
    # An option whose values are null is left out; a value without an image maps to None.
    assert products["B0FX000006"]["options"] == {"size": ["3.4 fl oz (pack of 1)", "3.4 fl oz (pack of 2)"]}
    assert products["B0FX000006"]["option_to_image"] == {"3.4 fl oz (pack of 1)": None, "3.4 fl oz (pack of 2)": None}
    assert products["B0FX000008"]["options"] == {"flavor name": ["cherry", "mint | lime", "vanilla"]}
    # A string small_description becomes a one-item list; an empty attribute list stays empty.
    assert products["B0FX000009"]["BulletPoints"] == [
        "SPF 30: broad spectrum sun protection for lips, water resistant for 80 minutes"
    ]
    assert products["B0FX000009"]["Attributes"] == []
    assert (products["B0FX000010"]["pricing"], products["B0FX000010"]["Price"]) == ([18.0, 32.0], "$18.0 to $32.0")


def test_loader_uses_reviews_when_present(tmp_path):
    reviews = [{"asin": "B0FX000006", "average_rating": 4.5,
                "reviews": [{"stars": 5, "review": "Tames my curls."}, {"score": 2, "title": "Too oily"}]}]
    (tmp_path / "reviews.json").write_text(json.dumps(reviews))
    files = CatalogFiles(FIXTURE / FIXTURE_PRODUCTS, FIXTURE / FIXTURE_ATTRIBUTES, None, tmp_path / "reviews.json")
    catalog = load_catalog(files)
    serum = catalog.by_asin["B0FX000006"]
    assert serum["Rating"] == 4.5
    assert serum["Reviews"] == [{"score": 5, "body": "Tames my curls."}, {"score": 2, "title": "Too oily", "body": ""}]
    assert catalog.by_asin["B0FX000007"]["Rating"] == "N.A."
    assert catalog.fingerprint != load_catalog(fixture_files()).fingerprint


def test_loader_rejects_bad_data(tmp_path):
    attributes = json.loads((FIXTURE / FIXTURE_ATTRIBUTES).read_text())
    del attributes["B0FX000007"]
    (tmp_path / "attributes.json").write_text(json.dumps(attributes))
    files = CatalogFiles(FIXTURE / FIXTURE_PRODUCTS, tmp_path / "attributes.json", None, None)
    with pytest.raises(WebShopDataError, match=r"attributes\.json has no entry for product B0FX000007"):
        load_catalog(files)
    # Human goals do not need the synthetic instructions; the product gets WebShop's placeholder attribute.
    (tmp_path / "items_human_ins.json").write_text("{}")
    human = load_catalog(CatalogFiles(FIXTURE / FIXTURE_PRODUCTS, tmp_path / "attributes.json", tmp_path / "items_human_ins.json", None), "human")
    assert human.by_asin["B0FX000007"]["Attributes"] == ["DUMMY_ATTR"]
    with pytest.raises(WebShopDataError, match="human goals need items_human_ins.json"):
        load_catalog(fixture_files(), "human")
    with pytest.raises(ValueError, match="known: synthetic, human"):
        load_catalog(fixture_files(), "expert")
    (tmp_path / "products.json").write_text('{"asin": "B0FX000001"}')
    with pytest.raises(WebShopDataError, match=r"products\.json should hold a JSON list"):
        load_catalog(CatalogFiles(tmp_path / "products.json", FIXTURE / FIXTURE_ATTRIBUTES, None, None))
    (tmp_path / "products.json").write_text('[{"asin": "B0FX000001", "name": "no other keys"}]')
    with pytest.raises(WebShopDataError, match=r"product 0 \(B0FX000001\) lacks key 'full_description'"):
        load_catalog(CatalogFiles(tmp_path / "products.json", FIXTURE / FIXTURE_ATTRIBUTES, None, None))


# ---------------------------------------------------------------- goals and splits


def test_synthetic_goals_on_the_fixture(fixture_catalog):
    goals, prices = build_goals(fixture_catalog, "synthetic")
    # One goal per option combination of each product with an instruction (13 of the 16).
    assert len(goals) == 36
    per_product = {asin: [g for g in goals if g["asin"] == asin] for asin in FIXTURE_ASINS}
    assert {asin: len(g) for asin, g in per_product.items() if g} == {
        "B0FX000001": 3, "B0FX000002": 3, "B0FX000003": 4, "B0FX000004": 1, "B0FX000006": 2, "B0FX000007": 1,
        "B0FX000008": 3, "B0FX000010": 2, "B0FX000011": 6, "B0FX000012": 1, "B0FX000013": 6, "B0FX000014": 2,
        "B0FX000016": 2,
    }
    candles = per_product["B0FX000011"]
    limit = candles[0]["price_upper"]
    assert limit in (40.0, 50.0, 60.0) and all(g["price_upper"] == limit for g in candles)
    assert {g["instruction_text"] for g in candles} == {
        f"i want a soy wax scented candle with a long burn time with scent: {scent}, and size: {size}, "
        f"and price lower than {limit:.2f} dollars"
        for scent in ("sandalwood vanilla", "fresh linen", "cedar | amber") for size in ("8 oz", "14 oz")
    }
    assert [list(g["goal_options"]) for g in candles] == [["scent", "size"]] * 6
    speaker = per_product["B0FX000004"][0]
    assert speaker == {
        "asin": "B0FX000004", "category": "electronics", "query": "bluetooth speaker",
        "name": "Hearthstone Retro Bluetooth Speaker with FM Radio, Walnut Wood Cabinet",
        "product_category": "Electronics › Portable Audio & Video › Portable Speakers & Docks",
        "instruction_text": "i'm looking for a retro bluetooth speaker with fm radio",
        "attributes": ["fm radio"], "price_upper": 1000000, "goal_options": {}, "weight": 1.0,
    }
    # "gift set" is an instruction attribute of 3 + 1 goals, "beeswax" of 3.
    assert per_product["B0FX000008"][0]["weight"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert 19.99 <= prices["B0FX000002"] <= 24.99 and 12.99 <= prices["B0FX000014"] <= 21.99
    assert (prices["B0FX000005"], prices["B0FX000013"]) == (100.0, 15.99)


def test_goals_are_deterministic_and_follow_webshops_random_streams(fixture_catalog):
    state = random.getstate()
    goals, prices = build_goals(fixture_catalog, "synthetic")
    assert random.getstate() == state
    assert build_goals(fixture_catalog, "synthetic") == (goals, prices)
    # WebShop: global generator seeded 42, prices drawn, then goals; reseeded 233, goals shuffled.
    random.seed(GOAL_SEED)
    expected_prices = product_prices(fixture_catalog.products, random)
    expected = synthetic_goals(fixture_catalog.products, expected_prices, random)
    random.seed(SHUFFLE_SEED)
    random.shuffle(expected)
    random.setstate(state)
    assert (goals, prices) == (expected, expected_prices)


def test_human_goals(tmp_path):
    human = {
        "B0FX000013": [
            {"instruction": "I want mustard pillow covers for my sofa.", "instruction_attributes": ["machine washable"],
             "instruction_options": ["mustard", '18"x18"']},
            {"instruction": "pillow covers", "instruction_attributes": [], "instruction_options": []},
        ],
        "B0FX000004": [{"instruction": "a wooden radio speaker", "instruction_attributes": ["fm radio"],
                        "instruction_options": []}],
    }
    (tmp_path / "items_human_ins.json").write_text(json.dumps(human))
    files = CatalogFiles(FIXTURE / FIXTURE_PRODUCTS, FIXTURE / FIXTURE_ATTRIBUTES, tmp_path / "items_human_ins.json", None)
    catalog = load_catalog(files, "human")
    assert catalog.by_asin["B0FX000013"]["instructions"] == human["B0FX000013"]
    assert "instruction_text" not in catalog.by_asin["B0FX000013"]
    goals, prices = build_goals(catalog, "human")
    assert len(goals) == 2  # the instruction without attributes is skipped
    pillow = next(g for g in goals if g["asin"] == "B0FX000013")
    assert pillow["instruction_text"] == (
        f"I want mustard pillow covers for my sofa, and price lower than {pillow['price_upper']:.2f} dollars"
    )
    assert pillow["price_upper"] in (30.0, 40.0, 50.0)
    assert (pillow["goal_options"], pillow["weight"]) == (["mustard", '18"x18"'], 1)
    radio = next(g for g in goals if g["asin"] == "B0FX000004")
    assert (radio["instruction_text"], radio["price_upper"]) == ("a wooden radio speaker", 1000000)
    assert prices == product_prices(catalog.products, random.Random(GOAL_SEED))
    with pytest.raises(ValueError, match="loaded with goals='human'"):
        build_goals(catalog, "synthetic")
    with pytest.raises(ValueError, match="loaded with goals='synthetic'"):
        build_goals(load_catalog(fixture_files()), "human")


def test_split_goal_indices():
    default = WebShopParams()
    conventional = (default.test_goals, default.validation_goals)
    assert conventional == (500, 1000)
    assert split_goal_indices(6910, "test", *conventional) == range(0, 500)
    assert split_goal_indices(6910, "validation", *conventional) == range(500, 1500)
    assert split_goal_indices(6910, "train", *conventional) == range(1500, 6910)
    # On a catalog with few goals the later splits are empty.
    assert split_goal_indices(36, "test", *conventional) == range(0, 36)
    assert len(split_goal_indices(36, "validation", *conventional)) == 0
    assert len(split_goal_indices(36, "train", *conventional)) == 0
    assert [split_goal_indices(36, s, 10, 6) for s in SPLIT_NAMES] == [range(0, 10), range(10, 16), range(16, 36)]
    with pytest.raises(ValueError, match="known: test, validation, train"):
        split_goal_indices(36, "eval", *conventional)


# ---------------------------------------------------------------- search


def test_analyze_follows_lucenes_english_analyzer():
    assert analyze("The Men's Running Shoes, and a Hat") == ["men", "run", "shoe", "hat"]
    assert analyze("3.4 FL OZ, 1,000 pcs, v1.5 cable") == ["3.4", "fl", "oz", "1,000", "pc", "v1.5", "cabl"]
    assert analyze("XS us wi-fi Material:SOLID") == ["xs", "us", "wi", "fi", "material:solid"]
    assert analyze("to be or not") == []


def test_product_document_is_the_text_webshop_indexes(fixture_catalog):
    pillows = fixture_catalog.by_asin["B0FX000013"]
    assert product_document(pillows) == (
        "Harbor Linen Throw Pillow Covers Set of 2, Boho Stripe, Machine Washable "
        "Two cotton and linen throw pillow covers with a woven boho stripe for the living room sofa. "
        "Hidden zipper; machine washable. MACHINE WASHABLE: cold wash, tumble dry low  "
        'color: mustard, sage green, rust, and size: 18"x18", 20"x20"'
    ).lower()


def test_search_finds_products_by_title_and_goal_query(fixture_catalog, fixture_index):
    for product in fixture_catalog.products:
        assert fixture_index.search(product["Title"])[0] == product["asin"]
    goals, _ = build_goals(fixture_catalog, "synthetic")
    for goal in goals:
        assert goal["asin"] in SearchIndex.page(fixture_index.search(goal["query"]), 1)
    assert fixture_index.search("wireless earbuds") == ["B0FX000016", "B0FX000001", "B0FX000002"]
    assert fixture_index.search("to the") == [] and fixture_index.search("zanzibar") == []


def test_search_pages(fixture_index):
    results = fixture_index.search("gift")
    assert len(results) == 11 and set(results) <= set(FIXTURE_ASINS)
    assert SearchIndex.page(results, 1) == results[:PRODUCTS_PER_PAGE]
    assert SearchIndex.page(results, 2) == ["B0FX000011"]
    assert SearchIndex.page(results, 3) == []
    with pytest.raises(ValueError, match="start at 1"):
        SearchIndex.page(results, 0)


def cache_folder_name(catalog) -> str:
    return f"{catalog.fingerprint[:16]}-v{search_module.INDEX_FORMAT}"


def test_index_is_cached_and_rebuilt_when_the_catalog_changes(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    cache = tmp_path / "cache"
    catalog = load_catalog(fixture_files(data))
    built = SearchIndex.open(catalog, cache)
    assert built.build_s > 0
    assert [p.name for p in cache.iterdir()] == [cache_folder_name(catalog)]
    loaded = SearchIndex.open(catalog, cache)
    assert loaded.build_s == 0
    assert not isinstance(loaded._docs, np.memmap)
    assert loaded.search("scented candles") == built.search("scented candles") == ["B0FX000011", "B0FX000012"]

    raw = json.loads((data / FIXTURE_PRODUCTS).read_text())
    blanket = next(p for p in raw if p["asin"] == "B0FX000015")
    blanket["name"] = "Zanzibar " + blanket["name"]
    (data / FIXTURE_PRODUCTS).write_text(json.dumps(raw))
    changed = load_catalog(fixture_files(data))
    assert changed.fingerprint != catalog.fingerprint
    rebuilt = SearchIndex.open(changed, cache)
    assert rebuilt.build_s > 0 and rebuilt.search("zanzibar") == ["B0FX000015"]
    assert sorted(p.name for p in cache.iterdir()) == sorted([cache_folder_name(catalog), cache_folder_name(changed)])


def test_a_builder_that_loses_the_race_uses_the_winners_index(tmp_path, monkeypatch, fixture_catalog):
    real_rename = os.rename

    def rename_after_another_builder(source, destination):
        shutil.copytree(source, destination)  # the other process renames its copy first
        (Path(destination) / "winner").write_text("")
        real_rename(source, destination)

    monkeypatch.setattr(search_module.os, "rename", rename_after_another_builder)
    index = SearchIndex.open(fixture_catalog, tmp_path)
    assert index.build_s > 0 and index.search("lip balm")[:2] == ["B0FX000009", "B0FX000008"]
    folder = tmp_path / cache_folder_name(fixture_catalog)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name] and (folder / "winner").exists()


def test_cached_index_must_match_the_catalog(tmp_path, fixture_catalog):
    SearchIndex.open(fixture_catalog, tmp_path)
    meta = tmp_path / cache_folder_name(fixture_catalog) / "prism_index.json"
    meta.write_text(json.dumps({"format": 0, "asins": []}))
    with pytest.raises(ValueError, match="delete that folder"):
        SearchIndex.open(fixture_catalog, tmp_path)


def _search_in_child(index: SearchIndex, keywords: str) -> list[str]:
    return index.search(keywords)


def test_loaded_index_works_in_spawned_workers(tmp_path, fixture_catalog):
    SearchIndex.open(fixture_catalog, tmp_path)
    index = SearchIndex.open(fixture_catalog, tmp_path)
    assert pickle.loads(pickle.dumps(index)).search("hair serum") == index.search("hair serum")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_search_in_child, (index, "hair serum")) == index.search("hair serum")


def test_default_index_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_index_cache_dir() == tmp_path / "prism-agents" / "webshop-index"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_index_cache_dir() == Path.home() / ".cache" / "prism-agents" / "webshop-index"


# ---------------------------------------------------------------- WebShop's 1000-product catalog


@pytest.fixture(scope="module")
def shared_catalog():
    folder = shared_data_dir()
    if not (folder / "items_shuffle_1000.json").is_file():
        pytest.skip(f"WebShop's 1000-product catalog is not in {folder} (set PRISM_WEBSHOP_DATA)")
    return load_catalog(find_catalog_files(folder, "1000"))


def test_shared_catalog_loads_like_webshop(shared_catalog):
    assert len(shared_catalog.products) == 1000
    sneaker = shared_catalog.by_asin["B08T84R7V2"]
    assert sneaker["Title"] == "Levi's Mens Lance Lo Mono UL Casual Sneaker Shoe"
    assert (sneaker["Price"], sneaker["pricing"]) == ("$29.99 to $44.99", [29.99, 44.99])
    assert sneaker["options"] == {
        "size": ["7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13"],
        "color": ["black | white", "white | black"],
    }
    assert sneaker["Attributes"] == ["lace closure", "rubber outsole", "rubber sole"]
    assert sneaker["BulletPoints"] == [
        "100% Synthetic ", "Imported ", "Rubber sole ", "Synthetic vegan leather upper ",
        "Soft, breathable fabric lining ", "Lightly cushioned footbed for excellent comfort ",
        "Lace-up closure with metal eyelets ", "Durable rubber outsole for added traction ",
    ]
    assert sneaker["query"] == "men's fashion sneakers"
    assert sneaker["instruction_text"] == "Find me men's fashion sneakers with lace closure, rubber outsole, rubber sole"

    booster = shared_catalog.by_asin["B09T6LTTCY"]
    assert booster["Title"] == "WiFi Booster Indoor/Outdoor Repeater Signal Booster 1200Mbps WiFi Amplifier Long Range VG37"
    assert (booster["Price"], booster["pricing"]) == ("$80.0", [80.0])
    assert booster["options"] == {}
    assert booster["Attributes"] == ["signal booster"]
    assert booster["BulletPoints"] == ["About this item\n \nWireless Bridge and AP Modes"]
    assert booster["query"] == "signal boosters"
    assert booster["instruction_text"] is None

    loafer = shared_catalog.by_asin["B005B75PDO"]
    assert loafer["Title"] == "CLARKS Privo Mens Riker, Black Suede, Size"
    assert (loafer["Price"], loafer["pricing"]) == ("$99.99", [99.99])
    assert loafer["options"] == {}  # both of its options are null
    assert loafer["Attributes"] == []
    assert loafer["BulletPoints"] == [""]
    assert loafer["query"] == "men's loafers & slip-ons"


def test_shared_catalog_goals_and_splits(shared_catalog):
    goals, prices = build_goals(shared_catalog, "synthetic")
    assert len(goals) == 6910
    assert [len(split_goal_indices(len(goals), split, 500, 1000)) for split in SPLIT_NAMES] == [500, 1000, 5410]
    assert build_goals(shared_catalog, "synthetic") == (goals, prices)
    # Measured by replaying WebShop's own procedure (global generator seeded 42, shuffle seeded 233).
    assert [(g["asin"], g["price_upper"]) for g in goals[:3]] == [
        ("B0743JKHBV", 30.0), ("B09QCP4579", 30.0), ("B099WH1RTM", 60.0)
    ]
    assert goals[0]["instruction_text"] == (
        'Find me double sided, machine washable decorative pillows with printing technology with size: 28" x 28", '
        "and price lower than 30.00 dollars"
    )
    assert goals[1]["goal_options"] == {"color": "black", "size": "3x-large"}
    assert goals[0]["weight"] == pytest.approx(0.05299377134820173)
    assert goals[500]["asin"] == "B094Q7B3SS"
    assert (goals[-1]["asin"], goals[-1]["price_upper"]) == ("B09NPML43M", 40.0)


def test_shared_catalog_search(shared_catalog, tmp_path):
    index = SearchIndex.open(shared_catalog, tmp_path)
    for asin in ("B08T84R7V2", "B09T6LTTCY", "B005B75PDO"):
        assert index.search(shared_catalog.by_asin[asin]["Title"])[0] == asin
    titled = [p for p in shared_catalog.products if p["Title"]]
    first = sum(index.search(p["Title"])[:1] == [p["asin"]] for p in titled)
    assert first >= 0.99 * len(titled)
    results = index.search("black")
    assert len(results) == SEARCH_RETURN_N and len(set(results)) == SEARCH_RETURN_N
    assert set(results) <= shared_catalog.by_asin.keys()
