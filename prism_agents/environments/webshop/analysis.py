"""The index terms of a text, as the Lucene analyzer behind WebShop's search makes them.

WebShop's index (pyserini 0.17.0, Anserini 0.14.3, Lucene 8.11) and its searcher analyse
text with Anserini's default English analyzer: Lucene's ``StandardTokenizer``, then
``EnglishPossessiveFilter``, ``LowerCaseFilter``, ``StopFilter`` (Lucene's English stop
words) and ``PorterStemFilter``. :func:`analyze` follows that chain:

- Tokens: Unicode word segmentation (UAX #29, from the ``regex`` module's word-boundary
  mode) keeping, as the tokenizer does, only segments holding a letter or digit, a Han
  character (each its own token), a hiragana (each its own token), katakana, or an emoji
  or pictograph; a run of Thai, Lao, Khmer or Myanmar letters is one token. Everything
  else (punctuation, most symbols, vulgar fractions such as "½", an apostrophe before a
  word) is dropped; a word longer than 255 characters is cut into pieces. Lucene 8 knows
  Unicode 9.0 (it drops the characters added since, which this classifies as today's
  Unicode does; WebShop's 1000 catalog holds none).
- Possessives: a token ending in an apostrophe (U+0027, U+2019 or U+FF07) and "s" loses
  both; U+2018 is not one of them ("brand‘s" stays one token and stems to "brand‘").
- Lower case per character, as Java's ``Character.toLowerCase`` (no final sigma).
- Lucene's English stop words are dropped; the rest are Porter-stemmed with NLTK's
  Porter stemmer in its ``MARTIN_EXTENSIONS`` mode, Porter's own version, which Lucene's
  ``PorterStemmer`` follows (words of one or two characters are left alone).
"""

from __future__ import annotations

from functools import cache, lru_cache

import regex

LUCENE_ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such "
    "that the their then there these they this to was will with".split()
)
"""Lucene's default English stop words (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``)."""

_COMPLEX_CONTEXT = regex.compile(r"(\p{Line_Break=Complex_Context}+)")
"""Thai, Lao, Khmer, Myanmar, ...: one token per run (StandardTokenizer's SOUTHEAST_ASIAN type)."""
_WORD_BOUNDARY = regex.compile(r"(?w)\b")
_PICTOGRAPHS = (
    "\u2388\u2605\u2607-\u260d\u260f\u2610\u2612\u2616\u2617\u2619-\u261c\u261e\u261f\u2621\u2624\u2625"
    "\u2627-\u2629\u262b-\u262d\u2630-\u2637\u263b-\u263f\u2641\u2643-\u2647\u2654-\u265e\u2661\u2662"
    "\u2664\u2667\u2669-\u267a\u267c\u267d\u2680-\u2685\u2690\u2691\u2698\u269a\u269d-\u269f\u26a2-\u26a6"
    "\u26a8\u26a9\u26ac-\u26af\u26b2-\u26bc\u26bf-\u26c3\u26c6\u26c7\u26c9-\u26cd\u26d0\u26d2"
    "\u26d5-\u26e8\u26eb-\u26ef\u26f6\u26fb\u26fc\u26fe-\u2701\u2703\u2704\u270e\u2710\u2711\u2765-\u2767"
    "\U0001f000-\U0001f003\U0001f005-\U0001f02b\U0001f030-\U0001f093\U0001f0a0-\U0001f0ae"
    "\U0001f0b1-\U0001f0bf\U0001f0c1-\U0001f0ce\U0001f0d1-\U0001f0f5\U0001f10d-\U0001f10f\U0001f12f"
    "\U0001f16c-\U0001f16f\U0001f1ad\U0001f1ae\U0001f260-\U0001f265\U0001f322\U0001f323"
    "\U0001f394\U0001f395\U0001f398\U0001f39c\U0001f39d\U0001f3f1\U0001f3f2\U0001f3f6\U0001f4fe"
    "\U0001f546-\U0001f548\U0001f54f\U0001f568-\U0001f56e\U0001f571\U0001f572\U0001f57b-\U0001f586"
    "\U0001f588\U0001f589\U0001f58e\U0001f58f\U0001f591-\U0001f594\U0001f597-\U0001f5a3"
    "\U0001f5a6\U0001f5a7\U0001f5a9-\U0001f5b0\U0001f5b3-\U0001f5bb\U0001f5bd-\U0001f5c1"
    "\U0001f5c5-\U0001f5d0\U0001f5d4-\U0001f5db\U0001f5df\U0001f5e0\U0001f5e2\U0001f5e4-\U0001f5e7"
    "\U0001f5e9-\U0001f5ee\U0001f5f0-\U0001f5f2\U0001f5f4-\U0001f5f9\U0001f6c6-\U0001f6ca"
    "\U0001f6d3\U0001f6d4\U0001f6e6-\U0001f6e8\U0001f6ea\U0001f6f1\U0001f6f2\U0001f774-\U0001f77f"
    "\U0001f7d5-\U0001f7db\U0001f7f1-\U0001f7ff\U0001f8b0-\U0001f8bb\U0001f8c0\U0001f8c1"
    "\U0001f8d0-\U0001f8d8\U0001fa00-\U0001fa57\U0001fa60-\U0001fa6d\U0001fb00-\U0001fbef"
    "\U0001fbfa-\U0001fbff"
)
"""Symbols StandardTokenizer keeps as emoji tokens although the ``regex`` module's ``Extended_Pictographic``
and ``Emoji`` properties leave them out (chess pieces, mahjong tiles, ...): measured by sending every code
point, one at a time, through Lucene with scripts/lucene_reference.sh."""
_TOKEN_CHAR = regex.compile(
    r"[\p{Word_Break=ALetter}\p{Word_Break=Hebrew_Letter}\p{Word_Break=Numeric}\p{Word_Break=Katakana}"
    rf"\p{{Script=Han}}\p{{Script=Hiragana}}\p{{Extended_Pictographic}}{_PICTOGRAPHS}"
    r"[\p{Emoji}--[#*0-9]]]",
    regex.V1,
)
"""A character that makes a word segment a token (one of StandardTokenizer's token types)."""
MAX_TOKEN_LENGTH = 255
"""StandardTokenizer's longest token, in UTF-16 code units; a longer word is cut into pieces of this length."""
_POSSESSIVE_APOSTROPHES = frozenset("'\u2019\uff07")
_LEADING_APOSTROPHES = "'\u2019"


def tokenize(text: str) -> list[str]:
    """The tokens Lucene 8's ``StandardTokenizer`` cuts ``text`` into (case kept)."""
    tokens = []
    for index, part in enumerate(_COMPLEX_CONTEXT.split(text)):
        if index % 2:
            tokens.append(part)
        else:
            # The regex module keeps an apostrophe before a word ("'em"), as UAX #29 allows for French
            # elisions; StandardTokenizer does not.
            segments = (segment.lstrip(_LEADING_APOSTROPHES) for segment in _WORD_BOUNDARY.split(part))
            tokens += [segment for segment in segments if _TOKEN_CHAR.search(segment)]
    if any(len(token) > MAX_TOKEN_LENGTH // 2 for token in tokens):
        tokens = [piece for token in tokens for piece in _split_long(token)]
    return tokens


def _split_long(token: str) -> list[str]:
    """``token`` cut into pieces of at most :data:`MAX_TOKEN_LENGTH` UTF-16 code units, as Lucene cuts it."""
    pieces, start, units = [], 0, 0
    for end, char in enumerate(token):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > MAX_TOKEN_LENGTH:
            pieces.append(token[start:end])
            start, units = end, 0
        units += width
    return pieces + [token[start:]]


def lucene_lower(token: str) -> str:
    """``token`` lower-cased one character at a time, as Lucene's ``LowerCaseFilter`` (Java's simple case mapping)."""
    if token.isascii():
        return token.lower()
    return "".join(char.lower()[:1] for char in token)  # "İ" -> "i", "Σ" -> "σ" even at a word's end


@cache
def _porter():
    """NLTK's Porter stemmer in Martin Porter's own variant, imported on first use (importing nltk takes a second)."""
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer(mode=PorterStemmer.MARTIN_EXTENSIONS)


@lru_cache(maxsize=1 << 18)
def stem(term: str) -> str:
    """Lucene's Porter stem of a lower-cased term."""
    return _porter().stem(term, to_lowercase=False)


def analyze(text: str) -> list[str]:
    """Index terms of ``text``, in order: tokens, possessive 's removed, lower-cased, stop words dropped, stemmed."""
    terms = []
    for token in tokenize(text):
        if len(token) >= 2 and token[-1] in "sS" and token[-2] in _POSSESSIVE_APOSTROPHES:
            token = token[:-2]
        term = lucene_lower(token)
        if term not in LUCENE_ENGLISH_STOP_WORDS:
            terms.append(stem(term))
    return terms
