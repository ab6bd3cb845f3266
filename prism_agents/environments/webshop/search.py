"""WebShop's product search: Lucene's BM25 ranking reproduced without Java, and upstream's search prefixes.

WebShop searches with pyserini 0.17.0 (Anserini 0.14.3, Lucene 8.11): each product is
one document (its lowercased title, description, first bullet point and option text),
analysed as :mod:`~prism_agents.environments.webshop.analysis` describes and scored with
BM25 (k1 0.9, b 0.4); the 50 best are returned, equal scores ordered by the document id
(the asin), as Anserini's ``SimpleSearcher`` sorts them.

:class:`SearchIndex` scores as Lucene does, step for step: a query term repeated n times
weighs n times (Anserini's bag-of-words query), idf is ``log(1 + (N - df + 0.5) / (df +
0.5))``, document lengths are Lucene's one-byte norms (:mod:`~.norms`), each term's score
``w - w / (1 + tf * inverse_norm)`` is computed in float32 and the terms' scores are
summed in double and rounded to float32. These details decide the order of close hits.
bm25s's "lucene" method has the formula but exact lengths and its own arithmetic, and it
offers no hook for either, so a small numpy scorer over the postings is the better tool;
its equality with Lucene is measured by benchmarks/webshop_lucene.py.

:func:`find_products` adds upstream's query prefixes (``<r>``, ``<a>``, ``<c>``, ``<q>``).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from prism_agents.environments.webshop.analysis import analyze
from prism_agents.environments.webshop.catalog import Catalog
from prism_agents.environments.webshop.norms import LENGTH_TABLE, encode_length

SEARCH_RETURN_N = 50
"""Most results one search returns (WebShop shows them 10 to a page)."""
PRODUCTS_PER_PAGE = 10
BM25_K1 = 0.9
BM25_B = 0.4
"""pyserini's default BM25 parameters, which WebShop's searcher keeps."""

INDEX_FORMAT = 3
"""Bumped whenever :func:`analyze`, the document text or the stored arrays change; part of the cache
folder's name, so a new format builds a new index instead of reusing an old one."""

_META_FILE = "prism_index.json"
_ARRAYS_FILE = "postings.npz"


def product_document(product: dict) -> str:
    """The text WebShop indexes for a processed product: title, description, first bullet point and options, lowercased."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    bullet_points = product["BulletPoints"]
    first_bullet = bullet_points[0] if bullet_points else ""
    return " ".join([product["Title"], product["Description"], first_bullet, option_text]).lower()


def default_index_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/prism-agents/webshop-index`` (``~/.cache/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prism-agents" / "webshop-index"


class SearchIndex:
    """Postings of one catalog's products and Lucene's BM25 over them; :meth:`open` builds them once and caches them on disk."""

    def __init__(self, asins: list[str], terms: list[str], arrays: dict[str, np.ndarray], build_s: float) -> None:
        self._asins = asins
        self._term_ids = {term: i for i, term in enumerate(terms)}
        self._offsets = arrays["offsets"]
        """Postings of term i: ``_docs[_offsets[i]:_offsets[i + 1]]`` (document numbers) and ``_freqs`` (term frequencies)."""
        self._docs = arrays["docs"]
        self._freqs = arrays["freqs"]
        norms = arrays["norms"]
        lengths = LENGTH_TABLE[norms]
        doc_count = int(np.count_nonzero(norms))
        avgdl = np.float32(int(arrays["total_terms"]) / doc_count) if doc_count else np.float32(1)
        k1, b = np.float32(BM25_K1), np.float32(BM25_B)
        self._doc_count = doc_count
        self._norm_inverse = np.float32(1) / (k1 * ((np.float32(1) - b) + b * lengths / avgdl))
        """Per document: 1 / (k1 (1 - b + b length / avgdl)), Lucene's cached norm factor."""
        # Rank of each document's asin in sorted order: Anserini's searcher breaks score ties by document id.
        order = sorted(range(len(asins)), key=asins.__getitem__)
        self._asin_rank = np.empty(len(asins), dtype=np.int64)
        self._asin_rank[order] = np.arange(len(asins))
        self.build_s = build_s
        """Seconds spent building the index (0 when it was loaded from the cache)."""

    @classmethod
    def open(cls, catalog: Catalog, cache_dir: Path) -> SearchIndex:
        """Load the catalog's index from ``cache_dir/<fingerprint[:16]>-v<INDEX_FORMAT>/``, building and saving it first if absent.

        The index is written to a temporary folder beside its final place and renamed
        into place, so readers never see half an index; when two processes build it at
        once, the one that renames second drops its copy and loads the first one's.
        """
        cache_dir = Path(cache_dir)
        folder = cache_dir / f"{catalog.fingerprint[:16]}-v{INDEX_FORMAT}"
        asins = [product["asin"] for product in catalog.products]
        if folder.is_dir():
            return cls(asins, *_load(folder, asins), build_s=0.0)
        start = time.perf_counter()
        terms, arrays = _build([analyze(product_document(p)) for p in catalog.products])
        build_s = time.perf_counter() - start
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=cache_dir))
        try:
            np.savez(staging / _ARRAYS_FILE, **arrays)
            (staging / _META_FILE).write_text(json.dumps({"format": INDEX_FORMAT, "asins": asins, "terms": terms}))
            os.rename(staging, folder)
        except OSError:
            if not folder.is_dir():
                raise
            return cls(asins, *_load(folder, asins), build_s=build_s)  # another process renamed its copy first
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(asins, terms, arrays, build_s=build_s)

    def scores(self, keywords: str) -> tuple[np.ndarray, np.ndarray]:
        """Lucene's float32 BM25 score of every product for ``keywords``, and which products match any query term."""
        total = np.zeros(len(self._asins), dtype=np.float64)
        matched = np.zeros(len(self._asins), dtype=bool)
        for term, boost in Counter(analyze(keywords)).items():
            term_id = self._term_ids.get(term)
            if term_id is None:
                continue
            start, stop = self._offsets[term_id], self._offsets[term_id + 1]
            docs, freqs = self._docs[start:stop], self._freqs[start:stop]
            doc_freq = int(stop - start)
            idf = np.float32(math.log(1 + (self._doc_count - doc_freq + 0.5) / (doc_freq + 0.5)))
            weight = np.float32(boost) * idf
            total[docs] += weight - weight / (np.float32(1) + freqs * self._norm_inverse[docs])
            matched[docs] = True
        return total.astype(np.float32), matched

    def search(self, keywords: str) -> list[str]:
        """Asins of the best-matching products, best first (equal scores by asin), at most :data:`SEARCH_RETURN_N`."""
        scores, matched = self.scores(keywords)
        hits = np.flatnonzero(matched)
        hits = hits[np.lexsort((self._asin_rank[hits], -scores[hits]))][:SEARCH_RETURN_N]
        return [self._asins[i] for i in hits]

    @staticmethod
    def page(asins: list[str], page: int) -> list[str]:
        """The asins shown on results page ``page`` (1-based), :data:`PRODUCTS_PER_PAGE` to a page."""
        if page < 1:
            raise ValueError(f"result pages start at 1, not {page}")
        return asins[(page - 1) * PRODUCTS_PER_PAGE : page * PRODUCTS_PER_PAGE]


def find_products(keywords: str, index: SearchIndex, catalog: Catalog, rng: random.Random) -> list[str]:
    """Asins a WebShop search for ``keywords`` lists, as upstream's ``get_top_n_product_from_keywords``.

    Upstream splits the keywords on single spaces and looks at the first word:

    - ``<r>``: :data:`SEARCH_RETURN_N` products drawn at random (``rng``), in draw order;
    - ``<a> words``: every product whose ``Attributes`` hold ``words``;
    - ``<c> word``: every product of category ``word`` (only the word after the prefix counts);
    - ``<q> words``: every product found for the query ``words``;

    these three in catalog order and uncapped. Anything else is a BM25 search
    (:meth:`SearchIndex.search`). Where upstream raises instead (``<c>`` with nothing
    after it; ``<a>`` in its text environment, which does not pass the attribute table;
    ``<r>`` in a catalog of under 50 products), this lists nothing, the same products,
    or the whole catalog in random order.
    """
    prefix, _, rest = keywords.partition(" ")
    products = catalog.products
    if prefix == "<r>":
        return [p["asin"] for p in rng.sample(products, k=min(SEARCH_RETURN_N, len(products)))]
    if prefix == "<a>":
        attribute = rest.strip()
        return [p["asin"] for p in products if attribute in p["Attributes"]]
    if prefix == "<c>":
        category = rest.split(" ")[0].strip() if rest else None
        return [p["asin"] for p in products if p["category"] == category]
    if prefix == "<q>":
        query = rest.strip()
        return [p["asin"] for p in products if p["query"] == query]
    return index.search(keywords)


def _build(documents: list[list[str]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Terms (in first-seen order) and the postings arrays of analysed documents."""
    postings: dict[str, list[tuple[int, int]]] = {}
    for doc, terms in enumerate(documents):
        for term, freq in Counter(terms).items():
            postings.setdefault(term, []).append((doc, freq))
    pairs = [pair for term_postings in postings.values() for pair in term_postings]
    offsets = np.zeros(len(postings) + 1, dtype=np.int64)
    np.cumsum([len(term_postings) for term_postings in postings.values()], out=offsets[1:])
    arrays = {
        "offsets": offsets,
        "docs": np.array([doc for doc, _ in pairs], dtype=np.int32),
        "freqs": np.array([freq for _, freq in pairs], dtype=np.float32),
        "norms": np.array([encode_length(len(terms)) for terms in documents], dtype=np.uint8),
        "total_terms": np.array(sum(len(terms) for terms in documents), dtype=np.int64),
    }
    return list(postings), arrays


def _load(folder: Path, asins: list[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a cached index into memory and check that it is this catalog's, in this format."""
    meta_path = folder / _META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("format") != INDEX_FORMAT or meta.get("asins") != asins:
        raise ValueError(
            f"the search index cached in {folder} does not match this catalog or this version of prism-agents; "
            "delete that folder to rebuild it"
        )
    with np.load(folder / _ARRAYS_FILE, allow_pickle=False) as stored:
        return meta["terms"], {name: stored[name] for name in stored.files}
