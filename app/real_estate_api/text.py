"""One definition of the text values the API accepts and the stores filter on, so a value the request schema accepts
can never fail a store later (a city with a zero-width joiner passed the schema's `\\w` and then failed the vector
filter's printability check: a 500).

A place name (city, district): 1 to 64 characters of letters, combining marks and digits of any script, connector
punctuation ('_'), spaces, '.', ''' and '-', and the zero-width non-joiner and joiner (U+200C, U+200D) that Persian
and Indic names write between letters; it starts with a letter, a digit or '_'. Letters are what Python's Unicode
database knows: one assigned after it (Python 3.11: Unicode 14) is refused with a 422 like any unknown character,
never accepted and failed later.

A filter literal may hold anything but the characters no filter syntax can escape (controls, surrogates, line and
paragraph separators): UnsafeFilterValue, which the recommender answers from the rule engine instead.
"""

from __future__ import annotations

import unicodedata

PLACE_MAX = 64
JOINERS = frozenset("\u200c\u200d")
PUNCTUATION = frozenset(" .'-")
UNESCAPABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})


class UnsafeFilterValue(ValueError):
    pass


def _shown(character: str) -> str:
    """A refused character, escaped (a mark or a control printed raw would change the line it is in)."""
    return f"{ascii(character)} (U+{ord(character):04X})"


def _word(character: str) -> bool:
    return unicodedata.category(character)[0] in "LMN" or unicodedata.category(character) == "Pc"


def place_problem(value: str) -> str | None:
    """Why `value` is not a place name (escaped: one line), or None."""
    if not 1 <= len(value) <= PLACE_MAX:
        return f"must be 1 to {PLACE_MAX} characters"
    first = value[0]
    if not _word(first) or unicodedata.category(first)[0] == "M":
        return f"must start with a letter, a digit or '_', not {_shown(first)}"
    for character in value:
        if not (_word(character) or character in PUNCTUATION or character in JOINERS):
            return f"may not contain {_shown(character)}"
    return None


def check_place(value: str) -> str:
    problem = place_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def filter_literal_problem(value: str) -> str | None:
    for character in value:
        if unicodedata.category(character) in UNESCAPABLE:
            return f"{_shown(character)} has no escape in a filter literal"
    return None
