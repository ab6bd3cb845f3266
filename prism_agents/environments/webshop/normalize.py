"""WebShop's colour normalisation, applied to option values before they are fuzzy-matched.

WebShop (``web_agent_site/engine/normalize.py``) maps an option to the first
word of its colour list that the option contains, and leaves it unchanged when
there is none. "Contains" is Python's ``in``: a substring test for a string
(``"r.brown2060"`` becomes ``"brown"``, ``"navy blue"`` becomes ``"blue"``,
since ``blue`` comes before ``navy``), an element test for a tuple (a
``(name, value)`` pair becomes a colour only when one of its two strings *is*
that colour word).
"""

from __future__ import annotations

COLOR_SET: tuple[str, ...] = (
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue", "blush",
    "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne", "charcoal", "cheetah",
    "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral", "cranberry", "cream", "crystal",
    "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite",
    "grass", "gray", "green", "grey", "heather", "indigo", "ivory", "ivy", "khaki", "lavender", "lemon",
    "leopard", "light", "lilac", "lime", "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha",
    "multicolor", "mushroom", "mustard", "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink",
    "plum", "purple", "rainbow", "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver",
    "skull", "slate", "steel", "stone", "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise",
    "violet", "walnut", "wheat", "white", "wine", "yellow",
)
"""WebShop's colour words, in its (alphabetical) search order: the first one found wins."""


def normalize_color(option: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """The first colour word ``in`` ``option`` (substring for a string, element for a tuple), else ``option``."""
    return next((colour for colour in COLOR_SET if colour in option), option)
