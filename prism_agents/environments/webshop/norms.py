"""Lucene's one-byte document lengths (``SmallFloat.intToByte4`` / ``byte4ToInt``), which its BM25 scores with.

Lucene 8 stores each document's length (its number of indexed terms) in one byte:
lengths below 24 exactly, longer ones as a 4-bit floating-point number above 24, so
that a length is rounded down into a bucket (99 is stored as 96, 1919 as 1816) and
documents in one bucket get the same length normalisation.
"""

from __future__ import annotations

import numpy as np

_MAX_INT4 = 231
"""``longToInt4(Integer.MAX_VALUE)``: the largest 4-bit float a 32-bit length needs."""
_FREE_VALUES = 255 - _MAX_INT4
"""Lengths below this (24) are stored as themselves."""


def _long_to_int4(value: int) -> int:
    """A non-negative integer as a float with a 3-bit mantissa (implicit leading bit) and the shift above it."""
    bits = value.bit_length()
    if bits < 4:
        return value
    shift = bits - 4
    return ((value >> shift) & 0x07) | ((shift + 1) << 3)


def _int4_to_long(value: int) -> int:
    shift = (value >> 3) - 1
    mantissa = value & 0x07
    return mantissa if shift == -1 else (mantissa | 0x08) << shift


def encode_length(length: int) -> int:
    """The byte (0-255) Lucene stores for a document of ``length`` terms (``SmallFloat.intToByte4``)."""
    if length < 0:
        raise ValueError(f"a document length cannot be negative, got {length}")
    if length < _FREE_VALUES:
        return length
    return _FREE_VALUES + _long_to_int4(length - _FREE_VALUES)


def decode_length(byte: int) -> int:
    """The length Lucene scores a document with, from its stored byte (``SmallFloat.byte4ToInt``)."""
    if byte < _FREE_VALUES:
        return byte
    return min(_FREE_VALUES + _int4_to_long(byte - _FREE_VALUES), 2**31 - 1)


LENGTH_TABLE = np.array([decode_length(byte) for byte in range(256)], dtype=np.float32)
"""Decoded length of every stored byte (BM25Similarity's ``LENGTH_TABLE``)."""
