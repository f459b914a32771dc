"""A block of the backbone given by index or by name: the one parser.

Every place that takes a block from a user, a parameter or a flag reads it here: the activation cache and the
trainers (:func:`block_index`, against the backbone's block names) and the strategies' checks between parameters
(:func:`block_number`, before the backbone is known). Standard library only, so the strategy declarations can use it.
"""

from __future__ import annotations

import numbers

from advisor.errors import AdvisorError


def block_number(value: object) -> int | None:
    """The index ``value`` gives: a whole number (not a bool) or its digits as text (a flag's, ``-`` allowed);
    None for anything else (a block name, or a value that is no block)."""
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text  # one sign at most: "--3" is no number
        return int(text) if digits.isascii() and digits.isdigit() else None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def block_index(value: object, names, owner: str) -> int:
    """``value`` (a name in ``names``, an index, or an index's digits) as an index into ``names``, the blocks of
    the backbone ``owner``; one-line AdvisorError for a name that is not there, a value that is no block or an
    index out of range."""
    names = list(names)
    n = len(names)
    if isinstance(value, str) and value in names:
        return names.index(value)
    i = block_number(value)
    if i is None:
        if isinstance(value, str):
            raise AdvisorError(f"unknown block '{value}' for {owner}",
                               f"choose a block index 0..{n - 1} or one of {', '.join(names)}")
        raise AdvisorError(f"bad block {value!r}", f"use a block index 0..{n - 1} or one of {', '.join(names)}")
    if not 0 <= i < n:
        raise AdvisorError(f"block index {i} out of range for {owner}", f"use 0..{n - 1}")
    return i
