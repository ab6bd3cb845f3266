"""WebShop search against real Lucene: how often prism-agents' results equal pyserini's.

The reference is WebShop's own search engine, run outside this project by
scripts/lucene_reference.sh (pyserini 0.17.0 / Anserini 0.14.3 / Lucene 8.11 in a
Python 3.10 venv, on Java): the catalog's documents are written as WebShop's
search_engine/convert_product_file_format.py writes them, indexed as its
run_indexing.sh indexes them, and every query is answered by Anserini's
``SimpleSearcher.search(query, 50)``. The same queries go through
:meth:`SearchIndex.search`. Queries, all lowercased as the environment lowercases a
search (kinds counted in the output):

- ``instruction``: the test split's goal instructions (goals 0-499);
- ``goal_query``: every distinct goal query (the search the expert types);
- ``title``: every product title;
- ``hard``: snippets of the catalog around every word holding a non-ASCII character
  (emoji, symbols, CJK, fractions, curly apostrophes), plus hand-written ones.

Reported per kind and overall: share of queries whose first page (top 10, in order) is
identical, share whose top-1 agrees, mean overlap@50 (shared products in both top-50s
over the larger list's length, 1 when both are empty), share whose full top-50 lists
are identical; and the analyzer's and scorer's agreement: documents and queries whose
index terms equal Lucene's, and queries whose 50 scores, passed through the rounding
Anserini applies before reporting them, equal the scores Lucene reports.

    python benchmarks/webshop_lucene.py --output benchmarks/results/webshop_lucene.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import regex

from prism_agents.environments.webshop.analysis import analyze
from prism_agents.environments.webshop.catalog import Catalog, find_catalog_files, load_catalog
from prism_agents.environments.webshop.goals import build_goals, split_goal_indices
from prism_agents.environments.webshop.search import SEARCH_RETURN_N, PRODUCTS_PER_PAGE, SearchIndex, product_document
from prism_agents.environments.webshop.shop import resolve_data_dir

REFERENCE_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "lucene_reference.sh"
HAND_WRITTEN = [
    "men's running shoes", "women’s winter boots", "kid‘s toys", "brand‘s lotion", "lady＇s hat", "MEN'S SHIRT",
    "½ inch hose", "1/2 inch hose", "¼ cup measuring", "¾ sleeve dress",
    "gift ™", "brand® shampoo", "© 2021 poster", "heart ❤️ necklace", "😀 phone case", "👍🏽 stickers",
    "🇺🇸 flag", "★★★★★ rated", "✓ quality", "♥ love",
    "中文 说明书", "日本製 タオル", "ひらがな", "한국 화장품", "ไทย", "café crème", "naïve résumé",
    "保质期 储存方式", "中国大陆 零食", "抹茶 日本", "韩国 面膜", "全新 正品", "口味：混合口味", "1½ inch", "2¼ lb", "⅓ cup",
    "⅛ inch drill", "o’neill’s", "‘quoted’ words", "'single quoted'",
    "size：large", "color:black", "wi-fi router", "usb-c cable 3.5mm", "1,000 pcs", "3.4 fl oz", "x_y", "___",
    "the and of", "a", "technology", "possibly", "generously",
]


def load_queries(catalog: Catalog) -> list[tuple[str, str]]:
    """(kind, query) pairs, lowercased, in a fixed order."""
    goals, _ = build_goals(catalog, "synthetic")
    test = split_goal_indices(len(goals), "test", 500, 1000)
    queries = [("instruction", goals[i]["instruction_text"]) for i in test]
    queries += [("goal_query", query) for query in dict.fromkeys(goal["query"] for goal in goals)]
    queries += [("title", product["Title"]) for product in catalog.products if product["Title"]]
    queries += [("hard", snippet) for snippet in _non_ascii_snippets(catalog)]
    queries += [("hard", text) for text in HAND_WRITTEN]
    return [(kind, query.lower()) for kind, query in queries if query.strip()]


def _non_ascii_snippets(catalog: Catalog) -> list[str]:
    """Each distinct word with a non-ASCII character in a product's title, description or options, with a word on either side."""
    snippets = {}
    pattern = re.compile(r"(?:\S+\s+)?\S*[^\x00-\x7f]\S*(?:\s+\S+)?")
    for product in catalog.products:
        for match in pattern.finditer(product_document(product)):
            snippets.setdefault(match.group(0), None)
    return list(snippets)


def ask_lucene(documents: list[dict], queries: list[str], texts: list[str], workdir: Path) -> dict:
    """Lucene's hits for ``queries`` and terms of ``texts`` (see benchmarks/lucene_reference.py)."""
    with open(workdir / "documents.jsonl", "w") as out:
        for document in documents:
            out.write(json.dumps(document) + "\n")
    request = {
        "documents": str(workdir / "documents.jsonl"), "workdir": str(workdir / "lucene"),
        "queries": queries, "k": SEARCH_RETURN_N, "texts": texts, "out": str(workdir / "answers.json"),
    }
    (workdir / "request.json").write_text(json.dumps(request))
    subprocess.run(["bash", str(REFERENCE_SCRIPT), str(workdir / "request.json")], check=True, capture_output=True)
    return json.loads((workdir / "answers.json").read_text())


def anserini_reported_scores(scores: list[float]) -> list[float]:
    """The scores SimpleSearcher reports for a ranked list: Anserini's ScoreTiesAdjusterReranker rounds each to four
    decimals and lowers each one within 1e-4 of the one above it by 1e-6 per such step (the order is kept)."""
    reported, run = [], 0
    for score in scores:
        value = np.float32(math.floor(float(np.float32(score)) * 10000.0 + 0.5) / 10000.0)
        if reported and reported[-1] - value <= np.float32(1e-4):
            run += 1
            value = value - np.float32(run) * np.float32(1e-6)
        else:
            run = 0
        reported.append(np.float32(value))
    return [float(value) for value in reported]


HARD_FEATURES = {
    "emoji_or_symbol": r"[\p{Extended_Pictographic}\p{So}]",
    "cjk_or_hangul": r"[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]",
    "vulgar_fraction": r"[\u00bc-\u00be\u2150-\u215e]",
    "curly_or_fullwidth_apostrophe": r"[\u2018\u2019\uff07]",
    "fullwidth_colon": r"\uff1a",
}
"""What the ``hard`` queries hold, counted in the output (a query can count under several)."""


def _overlap(ours: list[str], theirs: list[str]) -> float:
    return len(set(ours) & set(theirs)) / max(len(ours), len(theirs)) if ours or theirs else 1.0


def compare(catalog: Catalog, workdir: Path) -> dict:
    """The comparison's figures (see the module docstring) for one catalog."""
    index = SearchIndex.open(catalog, workdir / "index-cache")
    documents = [{"id": p["asin"], "contents": product_document(p)} for p in catalog.products]
    queries = load_queries(catalog)
    texts = [document["contents"] for document in documents] + [query for _, query in queries]
    answers = ask_lucene(documents, [query for _, query in queries], texts, workdir)
    lucene_terms = [[term for term, _, _ in tokens] for tokens in answers["tokens"]]
    doc_terms_equal = sum(analyze(text) == terms for text, terms in zip(texts, lucene_terms[: len(documents)]))
    query_terms_equal = sum(
        analyze(query) == terms for (_, query), terms in zip(queries, lucene_terms[len(documents) :])
    )
    rows, scores_equal, differing = {}, 0, []
    position = {asin: i for i, asin in enumerate(catalog.by_asin)}
    for (kind, query), hits in zip(queries, answers["hits"]):
        theirs = [docid for docid, _ in hits]
        ours = index.search(query)
        scores, _ = index.scores(query)
        scores_equal += anserini_reported_scores([scores[position[asin]] for asin in ours]) == [s for _, s in hits]
        first_page = ours[:PRODUCTS_PER_PAGE] == theirs[:PRODUCTS_PER_PAGE]
        row = rows.setdefault(kind, {"queries": 0, "first_page": 0, "top1": 0, "overlap50": 0.0, "top50": 0})
        row["queries"] += 1
        row["first_page"] += first_page
        row["top1"] += ours[:1] == theirs[:1]
        row["overlap50"] += _overlap(ours, theirs)
        row["top50"] += ours == theirs
        if not first_page:
            differing.append({"kind": kind, "query": query, "ours": ours[:PRODUCTS_PER_PAGE], "lucene": theirs[:PRODUCTS_PER_PAGE]})
    total = {key: sum(row[key] for row in rows.values()) for key in ("queries", "first_page", "top1", "overlap50", "top50")}

    def shares(row: dict) -> dict:
        n = row["queries"]
        return {
            "queries": n,
            "first_page_identical": row["first_page"] / n,
            "top1_agreement": row["top1"] / n,
            "mean_overlap_at_50": row["overlap50"] / n,
            "top50_identical": row["top50"] / n,
        }

    hard = [query for kind, query in queries if kind == "hard"]
    return {
        "products": len(catalog.products),
        "overall": shares(total),
        "by_kind": {kind: shares(row) for kind, row in rows.items()},
        "hard_queries_holding": {
            name: sum(bool(regex.search(pattern, query)) for query in hard) for name, pattern in HARD_FEATURES.items()
        },
        "queries_without_lucene_hits": sum(not hits for hits in answers["hits"]),
        "analyzer": {
            "documents": len(documents),
            "documents_with_lucenes_terms": doc_terms_equal,
            "queries_with_lucenes_terms": query_terms_equal,
            "queries_with_lucenes_reported_scores": scores_equal,
        },
        "first_page_differences": differing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="WebShop data folder (default: $WEBSHOP_DATA)")
    parser.add_argument("--catalog", default="1000", help="catalog key (default: 1000)")
    parser.add_argument("--output", default="benchmarks/results/webshop_lucene.json")
    args = parser.parse_args()
    catalog = load_catalog(find_catalog_files(resolve_data_dir(args.data), args.catalog))
    with tempfile.TemporaryDirectory() as workdir:
        result = compare(catalog, Path(workdir))
    result = {
        "benchmark": "webshop_lucene",
        "command": f"python benchmarks/webshop_lucene.py --catalog {args.catalog} --output {args.output}",
        "reference": "pyserini 0.17.0 (Anserini 0.14.3, Lucene 8.11) BM25 k1=0.9 b=0.4, SimpleSearcher.search(q, 50)",
        "catalog": args.catalog,
        "python": platform.python_version(),
        **result,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    overall = result["overall"]
    print(
        f"{overall['queries']} queries: first page identical {100 * overall['first_page_identical']:.2f} %, "
        f"top-1 {100 * overall['top1_agreement']:.2f} %, mean overlap@50 {overall['mean_overlap_at_50']:.4f}, "
        f"top-50 identical {100 * overall['top50_identical']:.2f} %; documents with Lucene's terms "
        f"{result['analyzer']['documents_with_lucenes_terms']} of {result['analyzer']['documents']}"
    )


if __name__ == "__main__":
    main()
