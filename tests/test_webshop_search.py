"""WebShop search: the analyzer, norms, scores and tie-break pinned to real Lucene's output, and upstream's prefixes.

Expected tokens, rankings and scores were produced by real Lucene (pyserini 0.17.0 /
Anserini 0.14.3, through scripts/lucene_reference.sh); the slow test at the end runs that
reference here and compares the whole 1000-product catalog.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import shutil
from pathlib import Path

import pytest

from prism_agents.environments.webshop.analysis import analyze, tokenize
from prism_agents.environments.webshop.catalog import Catalog, CatalogFiles, load_catalog
from prism_agents.environments.webshop.norms import LENGTH_TABLE, decode_length, encode_length
from prism_agents.environments.webshop.search import SEARCH_RETURN_N, SearchIndex, find_products

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "webshop"
SHARED_DATA = REPO.parent / "shared" / "data" / "webshop"


@pytest.fixture(scope="module")
def fixture_catalog() -> Catalog:
    files = CatalogFiles(FIXTURE / "fixture_products.json", FIXTURE / "fixture_attributes.json", None, None)
    return load_catalog(files)


@pytest.fixture(scope="module")
def fixture_index(fixture_catalog, tmp_path_factory) -> SearchIndex:
    return SearchIndex.open(fixture_catalog, tmp_path_factory.mktemp("index"))


def make_catalog(texts: list[tuple[str, str]], **fields) -> Catalog:
    """A catalog of (asin, title) products, in the order given, with ``fields`` set on every product."""
    products = [
        {"asin": asin, "Title": title, "Description": "", "BulletPoints": [], "options": {}, "Price": "$1.00", **fields}
        for asin, title in texts
    ]
    return Catalog(products, {p["asin"]: p for p in products}, hashlib.sha256(repr(texts).encode()).hexdigest())


# ---------------------------------------------------------------- analyzer (expected: Lucene's output)

LUCENE_TERMS = {
    "The Men's Running Shoes, and a Hat": ["men", "run", "shoe", "hat"],
    "3.4 FL OZ, 1,000 pcs, v1.5 cable": ["3.4", "fl", "oz", "1,000", "pc", "v1.5", "cabl"],
    "XS us wi-fi Material:SOLID": ["xs", "us", "wi", "fi", "material:solid"],
    # Possessives: ' ’ ＇ are removed with the s; ‘ is part of the word, and Porter then drops the s.
    "Brand’s lotion, brand‘s lotion, lady＇s hat, DOG'S bed": ["brand", "lotion", "brand‘", "lotion", "ladi", "hat", "dog", "bed"],
    "you can't beat 'em, join 'em": ["you", "can't", "beat", "em", "join", "em"],
    # Vulgar fractions are dropped; "1/2" is two numbers.
    "½ inch ¼ cup 1/2 inch": ["inch", "cup", "1", "2", "inch"],
    # Emoji and some symbols are tokens (sequences kept whole); ✓ and # are not.
    "gift™ brand® ©2020 ❤️ 😀👍🏽 👨\u200d👩\u200d👧 🇺🇸 ★ ✓ ♥ #1 1️⃣": [
        "gift", "™", "brand", "®", "©", "2020", "❤️", "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇺🇸", "★", "♥", "1", "1️⃣",
    ],
    # Han and hiragana one character a token; katakana, hangul and Thai runs whole.
    "中文字 ひらがな カタカナ 한국어 ไทยภาษา": ["中", "文", "字", "ひ", "ら", "が", "な", "カタカナ", "한국어", "ไทยภาษา"],
    # Colons (also fullwidth) join letters; ".." does not; a lone underscore is no token.
    "size：large color:black a..b x_y ___": ["size：larg", "color:black", "b", "x_y"],
    "technology possibly generously running ponies agreed": ["technolog", "possibl", "gener", "run", "poni", "agre"],
    # Lower case one character at a time: no final sigma, dotted capital I to i.
    "ΣΑΣ İstanbul café": ["σασ", "istanbul", "café"],
    "to be or not": [],
}


@pytest.mark.parametrize("text", list(LUCENE_TERMS))
def test_analyze_equals_lucenes_english_analyzer(text):
    assert analyze(text) == LUCENE_TERMS[text]


def test_tokenize_keeps_case_and_stop_words():
    assert tokenize("The DOG'S ½ bed") == ["The", "DOG'S", "bed"]


def test_long_words_are_cut_as_lucene_cuts_them():
    # Lucene's pieces: 255 UTF-16 code units each (a letter outside the BMP counts two), the rest after them.
    assert [len(token) for token in tokenize("b" * 600 + " x")] == [255, 255, 90, 1]
    assert [len(token) for token in tokenize("ab" * 130 + "😀")] == [255, 5, 1]
    assert [len(token) for token in tokenize("a" + "𝐀" * 128)] == [128, 1]


# ---------------------------------------------------------------- norms


def test_lengths_are_stored_in_one_lucene_byte():
    assert [decode_length(encode_length(n)) for n in (0, 1, 23, 24, 99, 1919)] == [0, 1, 23, 24, 96, 1816]
    assert encode_length(99) == 57 and encode_length(2**31 - 1) == 255
    assert all(encode_length(decode_length(byte)) == byte for byte in range(256))
    assert list(LENGTH_TABLE) == sorted(LENGTH_TABLE) and LENGTH_TABLE[57] == 96
    with pytest.raises(ValueError, match="negative"):
        encode_length(-1)


# ---------------------------------------------------------------- ranking (expected: Lucene's hits)


def test_ranking_and_scores_equal_lucenes(fixture_catalog, fixture_index):
    lucene = {  # SimpleSearcher's hits with the scores it reports (rounded to 4 decimals by Anserini)
        "wireless earbuds": [("B0FX000016", 2.0353), ("B0FX000001", 1.9774), ("B0FX000002", 1.9430)],
        "lip balm": [("B0FX000009", 2.8408), ("B0FX000008", 2.6925)],
        "hair serum hair": [("B0FX000007", 4.3135), ("B0FX000006", 4.2387)],  # a repeated term weighs twice
    }
    position = {asin: i for i, asin in enumerate(fixture_catalog.by_asin)}
    for query, hits in lucene.items():
        assert fixture_index.search(query) == [asin for asin, _ in hits]
        scores, matched = fixture_index.scores(query)
        assert matched.sum() == len(hits)
        assert [round(float(scores[position[asin]]), 4) for asin, _ in hits] == [score for _, score in hits]


def test_equal_scores_are_ordered_by_asin_and_lengths_share_buckets(tmp_path):
    body = " ".join(f"w{i}" for i in range(95))
    # Lucene ranked these B1, B2, B3: 97 and 99 terms share the bucket of 96, and equal scores go by asin,
    # not by the order of the documents in the index.
    catalog = make_catalog([("B3", f"red apple {body}"), ("B1", f"red apple {body}"), ("B2", f"red apple {body} x y"),
                            ("B0", "blue pear")])
    index = SearchIndex.open(catalog, tmp_path)
    assert index.search("red apple") == ["B1", "B2", "B3"]
    scores, _ = index.scores("apple")
    assert scores[0] == scores[1] == scores[2] > 0 and scores[3] == 0


def test_search_returns_at_most_fifty(tmp_path):
    catalog = make_catalog([(f"B{n:03d}", f"lamp number {n}") for n in range(70)])
    assert SearchIndex.open(catalog, tmp_path).search("lamp") == [f"B{n:03d}" for n in range(SEARCH_RETURN_N)]


# ---------------------------------------------------------------- upstream's prefixes


@pytest.fixture(scope="module")
def prefix_catalog() -> Catalog:
    products = [(f"B{n:03d}", f"item {n}") for n in range(70)]
    catalog = make_catalog(products, category="garden", query="garden hose", Attributes=["long lasting"])
    for n, product in enumerate(catalog.products):
        if n % 2:
            product.update(category="beauty", query="lip balm", Attributes=["travel size", "long lasting"])
    return catalog


def test_category_prefix_lists_every_product_of_that_category_uncapped(prefix_catalog, tmp_path):
    index = SearchIndex.open(prefix_catalog, tmp_path)
    odd = [f"B{n:03d}" for n in range(1, 70, 2)]
    rng = random.Random(0)
    assert find_products("<c> beauty", index, prefix_catalog, rng) == odd
    assert len(find_products("<c> garden hose", index, prefix_catalog, rng)) == 35  # only the first word counts
    assert find_products("<c>  beauty", index, prefix_catalog, rng) == []  # upstream's category is then ""
    assert find_products("<c>", index, prefix_catalog, rng) == []
    assert find_products("<a> travel size", index, prefix_catalog, rng) == odd
    assert len(find_products("<a> long lasting ", index, prefix_catalog, rng)) == 70
    assert find_products("<q> lip balm", index, prefix_catalog, rng) == odd
    assert find_products("<q> lip", index, prefix_catalog, rng) == []
    # A prefix counts only as the first word; anything else is a BM25 search.
    assert find_products("item <c> beauty", index, prefix_catalog, rng) == index.search("item <c> beauty")
    assert find_products("<c>beauty", index, prefix_catalog, rng) == index.search("<c>beauty") == []


def test_random_prefix_draws_fifty_distinct_products(prefix_catalog, tmp_path):
    index = SearchIndex.open(prefix_catalog, tmp_path)
    drawn = find_products("<r>", index, prefix_catalog, random.Random(7))
    assert len(drawn) == len(set(drawn)) == SEARCH_RETURN_N
    assert drawn == [p["asin"] for p in random.Random(7).sample(prefix_catalog.products, k=SEARCH_RETURN_N)]
    assert find_products("<r> anything", index, prefix_catalog, random.Random(8)) != drawn


def test_prefix_search_in_a_session_pages_through_all_results(prefix_catalog, tmp_path):
    from prism_agents.environments.webshop.session import ShopSession
    from prism_agents.environments.webshop.shop import Shop

    shop = Shop(None, prefix_catalog, [], {}, SearchIndex.open(prefix_catalog, tmp_path))
    goal = {"asin": "B001", "instruction_text": "find an item"}
    session = ShopSession(shop, goal, "en_core_web_sm")
    assert session.act("search[<C> Beauty]")  # the argument is lower-cased, as upstream does
    assert len(session.results) == 35 and session.page.kind == "results"
    for _ in range(3):
        assert session.act("click[next >]")
    assert session.page_number == 4 and "b061" in session.page.clickables
    first = session.act("search[<r>]") and list(session.results)
    assert len(first) == SEARCH_RETURN_N
    assert session.act("click[next >]") and session.results != first  # upstream draws again for every page
    again = ShopSession(shop, goal, "en_core_web_sm")
    again.act("search[<c> beauty]")
    assert again.act("search[<r>]") and again.results == first  # the draws are seeded by the goal


# ---------------------------------------------------------------- against real Lucene


def _reference_missing() -> str | None:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = Path(os.environ.get("LUCENE_VENV") or cache / "prism-agents" / "lucene-venv") / "bin" / "python"
    if shutil.which("java") is None:
        return "no java on PATH (the Lucene reference needs OpenJDK 11+)"
    if not venv.exists():
        return f"no Lucene reference venv at {venv.parent.parent} (build it with scripts/lucene_reference.sh --setup)"
    if not (SHARED_DATA / "items_shuffle_1000.json").exists():
        return f"no 1000-product WebShop catalog in {SHARED_DATA}"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_reference_missing() is not None, reason=str(_reference_missing()))
def test_first_results_page_equals_lucene_on_the_webshop_catalog(tmp_path):
    from prism_agents.environments.webshop.catalog import find_catalog_files

    spec = importlib.util.spec_from_file_location("webshop_lucene", REPO / "benchmarks" / "webshop_lucene.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    result = benchmark.compare(load_catalog(find_catalog_files(SHARED_DATA, "1000")), tmp_path)
    assert result["overall"]["queries"] >= 1200
    assert result["overall"]["first_page_identical"] >= 0.99, result["first_page_differences"][:5]
