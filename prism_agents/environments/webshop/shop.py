"""The shop behind every WebShop environment of a process: catalog, goals, prices and search index.

Loading the catalog, building the goals and opening the BM25 index take
seconds, so a process opens each shop once (:func:`open_shop` is cached) and
every environment slot of a worker shares it.
"""

from __future__ import annotations

import functools
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from prism_agents.environments.webshop.params import WebShopParams
from prism_agents.environments.webshop.catalog import Catalog, CatalogFiles, WebShopDataError, find_catalog_files, load_catalog
from prism_agents.environments.webshop.goals import build_goals, split_goal_indices
from prism_agents.environments.webshop.search import SearchIndex, default_index_cache_dir

DATA_ENV_VAR = "WEBSHOP_DATA"
"""Environment variable naming the WebShop data folder when ``environment.data_path`` is unset."""


def resolve_data_dir(data_path: Optional[str]) -> Path:
    """The WebShop data folder: ``data_path``, else ``$WEBSHOP_DATA``; an error says how to provide it."""
    chosen = data_path or os.environ.get(DATA_ENV_VAR)
    if not chosen:
        raise WebShopDataError(
            f"no WebShop data folder: set environment.data_path or ${DATA_ENV_VAR} to the folder holding "
            "items_shuffle_1000.json and items_ins_v2_1000.json (see `prism-agents data webshop`)"
        )
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise WebShopDataError(f"WebShop data folder {folder} does not exist")
    return folder


@dataclass(frozen=True)
class Shop:
    """Everything an episode reads: products, goals in WebShop's shuffled order, product prices and search."""

    files: CatalogFiles
    """The catalog's source files."""
    catalog: Catalog
    """Processed products."""
    goals: list[dict]
    """Goals in WebShop's seeded, shuffled order (a goal's index in this list is its id)."""
    prices: dict[str, float]
    """Price paid for each product (one draw in a price range, as WebShop prices it)."""
    index: SearchIndex
    """BM25 search over the products."""

    def split_range(self, settings: WebShopParams, split: str) -> range:
        """Indices into :attr:`goals` of ``split`` (``test``, ``validation`` or ``train``)."""
        return split_goal_indices(len(self.goals), split, settings.test_goals, settings.validation_goals)

    @functools.cached_property
    def charset(self) -> frozenset[str]:
        """Every character a page or an action can hold: printable ASCII plus those of the products and goals."""
        texts = [str(value) for product in self.catalog.products for value in product.values()]
        texts += [goal["instruction_text"] for goal in self.goals]
        return frozenset(string.printable).union(*texts)

    def describe(self, settings: WebShopParams, split: str) -> str:
        """What a metric on ``split`` was measured over: catalog size, goal set, goal range and the goal seed."""
        goal_range = self.split_range(settings, split)
        span = f"goals {goal_range.start}-{goal_range.stop - 1}" if goal_range else "no goals"
        return (
            f"WebShop {split} split: {span} ({len(goal_range)} of {len(self.goals)} {settings.goals} goals), "
            f"{len(self.catalog.products)}-product catalog, goal seed {settings.goal_seed}"
        )


def open_shop(data_path: Optional[str], settings: WebShopParams) -> Shop:
    """The shop for a data folder and settings, opened once per process."""
    cache_dir = Path(settings.index_cache_dir).expanduser() if settings.index_cache_dir else default_index_cache_dir()
    files = (settings.catalog, settings.products_file, settings.attributes_file)
    return _open_shop(resolve_data_dir(data_path).resolve(), files, settings.goals, settings.goal_seed, cache_dir)


@functools.lru_cache(maxsize=4)
def _open_shop(
    data_dir: Path, catalog_files: tuple[str, str | None, str | None], goal_kind: str, goal_seed: int, cache_dir: Path
) -> Shop:
    files = find_catalog_files(data_dir, *catalog_files)
    catalog = load_catalog(files, goals=goal_kind)
    goals, prices = build_goals(catalog, goal_kind, goal_seed)
    return Shop(files, catalog, goals, prices, SearchIndex.open(catalog, cache_dir))
