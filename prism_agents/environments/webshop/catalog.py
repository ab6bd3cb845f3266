"""WebShop's product catalog: finding its data files and loading them as WebShop's engine does.

WebShop (princeton-nlp/WebShop) ships its catalog as raw scraped products
(``items_shuffle*.json``) plus per-product attribute annotations and synthetic
instructions (``items_ins_v2*.json``). :func:`load_catalog` turns them into the
processed product dicts WebShop's ``load_products`` builds (``Title``, ``Price``,
``options``, ``Attributes``, ...), field for field, so goals, search documents
and rewards computed from them match WebShop's.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from prism_agents.environments.base import EnvironmentDataError


class WebShopDataError(EnvironmentDataError):
    """A WebShop data file is missing or does not hold what WebShop's files hold."""


CATALOGS: dict[str, tuple[str, str]] = {
    "1000": ("items_shuffle_1000.json", "items_ins_v2_1000.json"),
    "full": ("items_shuffle.json", "items_ins_v2.json"),
}
"""Catalog name -> (products file, attributes file), as WebShop's setup script names them."""

HUMAN_INSTRUCTIONS_FILE = "items_human_ins.json"
HUMAN_INSTRUCTIONS_HOW = (
    "needed only for goals: human, the crowd-written instructions of the WebShop paper's test split; WebShop's "
    "setup.sh downloads it with either -d option (gdown of Google Drive file 14Kb5SPBk_jfdLZ_CDBNitW98QLDlKR5O); "
    "put it beside the catalog files"
)
"""How to get the human instructions, as ``prism-agents data webshop`` says it when the file is missing."""
REVIEWS_FILE = "reviews.json"
GOAL_KINDS = ("synthetic", "human")

_SETUP_FLAGS = {"1000": "-d small", "full": "-d all"}
_DROPPED_KEYS = (
    "product_information", "brand", "brand_url", "list_price", "availability_quantity",
    "availability_status", "total_reviews", "total_answered_questions", "seller_id",
    "seller_name", "fulfilled_by_amazon", "fast_track_message", "aplus_present",
    "small_description_old",
)
"""Raw keys WebShop removes from every product before processing them."""


@dataclass(frozen=True)
class CatalogFiles:
    """Where one catalog's files are; the human instructions and reviews are optional."""

    products: Path
    attributes: Path
    human_instructions: Path | None
    reviews: Path | None


@dataclass
class Catalog:
    """Processed products in catalog order, indexed by asin; ``fingerprint`` is a sha256 of the files read."""

    products: list[dict]
    by_asin: dict[str, dict]
    fingerprint: str


def _how_to_get(catalog: str) -> str:
    return (
        f"WebShop's setup script downloads it (princeton-nlp/WebShop: ./setup.sh {_SETUP_FLAGS[catalog]}, "
        "or the data links in its README)"
    )


def find_catalog_files(
    data_dir: Path, catalog: str, products_file: str | None = None, attributes_file: str | None = None
) -> CatalogFiles:
    """Locate catalog ``catalog`` (a key of :data:`CATALOGS`) in ``data_dir``; the file names may be given instead."""
    if catalog not in CATALOGS:
        raise ValueError(f"unknown WebShop catalog {catalog!r}; known: {', '.join(CATALOGS)}")
    data_dir = Path(data_dir)
    products_name = products_file or CATALOGS[catalog][0]
    attributes_name = attributes_file or CATALOGS[catalog][1]
    for name in (products_name, attributes_name):
        if not (data_dir / name).is_file():
            raise WebShopDataError(f"{data_dir / name} not found: the {catalog!r} catalog needs it; {_how_to_get(catalog)}")
    human = data_dir / HUMAN_INSTRUCTIONS_FILE
    reviews = data_dir / REVIEWS_FILE
    return CatalogFiles(
        products=data_dir / products_name,
        attributes=data_dir / attributes_name,
        human_instructions=human if human.is_file() else None,
        reviews=reviews if reviews.is_file() else None,
    )


def catalog_status(data_dir: Path) -> list[str]:
    """Human-readable lines saying which WebShop files ``data_dir`` holds and how to get the missing ones."""
    data_dir = Path(data_dir)
    lines = [f"WebShop data folder: {data_dir}" + ("" if data_dir.is_dir() else " (does not exist)")]
    for catalog, names in CATALOGS.items():
        missing = [name for name in names if not (data_dir / name).is_file()]
        found = ", ".join(f"{name} ({_size(data_dir / name)})" for name in names if name not in missing)
        if not missing:
            lines.append(f"catalog {catalog!r}: ready: {found}")
        else:
            have = f"; present: {found}" if found else ""
            lines.append(
                f"catalog {catalog!r}: missing {', '.join(missing)}{have}; "
                f"WebShop's setup.sh fetches this set when run with {_SETUP_FLAGS[catalog]}"
            )
    optional = (
        ("human instructions", HUMAN_INSTRUCTIONS_FILE, HUMAN_INSTRUCTIONS_HOW),
        ("reviews", REVIEWS_FILE, "optional: without it products have no reviews and rating 'N.A.'; setup.sh does not fetch it"),
    )
    for label, name, when_missing in optional:
        path = data_dir / name
        lines.append(f"{label}: {name} ({_size(path)})" if path.is_file() else f"{label}: {name} missing ({when_missing})")
    return lines


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def check_goal_files(files: CatalogFiles, goals: str) -> None:
    """Raise unless ``goals`` is a goal kind whose instructions ``files`` hold (human goals need their own file)."""
    if goals not in GOAL_KINDS:
        raise ValueError(f"unknown goal kind {goals!r}; known: {', '.join(GOAL_KINDS)}")
    if goals == "human" and files.human_instructions is None:
        raise WebShopDataError(
            f"human goals need {HUMAN_INSTRUCTIONS_FILE}, which was not found beside {files.products}; "
            "WebShop's setup script downloads it"
        )


def load_catalog(files: CatalogFiles, goals: str = "synthetic") -> Catalog:
    """Load and process the catalog as WebShop's ``load_products`` does.

    ``goals`` says which instructions the products carry: ``"synthetic"`` copies
    ``instruction_text`` / ``instruction_attributes`` from the attributes file,
    ``"human"`` copies ``instructions`` from the human instructions file.
    """
    check_goal_files(files, goals)
    digest = hashlib.sha256()
    raw_products = _read_json(files.products, digest, list)
    attributes = _read_json(files.attributes, digest, dict)
    human = _read_json(files.human_instructions, digest, dict) if goals == "human" else {}
    reviews = _read_json(files.reviews, digest, list) if files.reviews else []
    all_reviews = {review["asin"]: review["reviews"] for review in reviews}
    all_ratings = {review["asin"]: review["average_rating"] for review in reviews}

    products: list[dict] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_products):
        for key in _DROPPED_KEYS:
            raw.pop(key, None)
        asin = raw.get("asin")
        if not isinstance(asin, str):
            raise WebShopDataError(f"{files.products}: product {index} has no string 'asin' (got {asin!r})")
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        if goals == "synthetic" and asin not in attributes:
            raise WebShopDataError(f"{files.attributes} has no entry for product {asin}; synthetic goals need one per product")
        try:
            products.append(_process(raw, attributes, human, all_reviews, all_ratings, goals))
        except KeyError as error:
            raise WebShopDataError(f"{files.products}: product {index} ({asin}) lacks key {error}") from error
        except InvalidOperation as error:
            raise WebShopDataError(f"{files.products}: product {index} ({asin}) has a pricing amount that is not a number: {raw['pricing']!r}") from error
    return Catalog(products=products, by_asin={p["asin"]: p for p in products}, fingerprint=digest.hexdigest())


def _read_json(path: Path, digest: Any, kind: type) -> Any:
    data = Path(path).read_bytes()
    digest.update(f"{Path(path).name}:{len(data)}:".encode())
    digest.update(data)
    try:
        value = json.loads(data)
    except json.JSONDecodeError as error:
        raise WebShopDataError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(value, kind):
        raise WebShopDataError(f"{path} should hold a JSON {'list' if kind is list else 'object'}, not {type(value).__name__}")
    return value


def _process(
    product: dict,
    attributes: dict,
    human: dict,
    all_reviews: dict,
    all_ratings: dict,
    goals: str,
) -> dict:
    """Add WebShop's processed fields to one raw product (in place) and return it."""
    asin = product["asin"]
    product["Title"] = product["name"]
    product["Description"] = product["full_description"]
    product["Reviews"] = all_reviews.get(asin, [])
    product["Rating"] = all_ratings.get(asin, "N.A.")
    for review in product["Reviews"]:
        if "score" not in review:
            review["score"] = review.pop("stars")
        review["body"] = review.pop("review") if "review" in review else ""
    small = product["small_description"]
    product["BulletPoints"] = small if isinstance(small, list) else [small]

    product["pricing"], product["Price"] = _parse_pricing(product.get("pricing"))
    product["options"], product["option_to_image"] = _parse_options(product["customization_options"])

    annotation = attributes.get(asin)
    if annotation is not None and "attributes" in annotation:
        product["Attributes"] = annotation["attributes"]
    else:
        product["Attributes"] = ["DUMMY_ATTR"]
    if goals == "human":
        if asin in human:
            product["instructions"] = human[asin]
    else:
        product["instruction_text"] = annotation.get("instruction")
        product["instruction_attributes"] = annotation.get("instruction_attributes")

    product["MainImage"] = product["images"][0]
    product["query"] = product["query"].lower().strip()
    return product


def _parse_pricing(pricing: str | None) -> tuple[list[float], str]:
    """WebShop's price list and price tag: every ``$`` amount (the first two of a range), ``$100.0`` when none."""
    if not pricing:
        return [100.0], "$100.0"
    prices = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in pricing.split("$")[1:]]
    if len(prices) == 1:
        return prices, f"${prices[0]}"
    return prices[:2], f"${prices[0]} to ${prices[1]}"


def _parse_options(customization: dict | str | None) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Option name -> values, lowercased with ``/`` shown as `` | ``; and each value's image."""
    options: dict[str, list[str]] = {}
    option_to_image: dict[str, Any] = {}
    if not customization:
        return options, option_to_image
    for name, contents in customization.items():
        if contents is None:
            continue
        values = []
        for content in contents:
            value = content["value"].strip().replace("/", " | ").lower()
            values.append(value)
            option_to_image[value] = content.get("image")
        options[name.lower()] = values
    return options, option_to_image
