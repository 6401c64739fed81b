"""A listing's physical bounds, shared by the request schema (app.py), the database (schema.py: a CHECK constraint,
and the quarantine of rows earlier releases accepted outside them) and the vector results (recommendations.py): a
1e-300 m² flat is a typo, not a listing, and no stored row may turn a valuation or a ranking into infinities."""

from __future__ import annotations

import math
from typing import Mapping

LISTING = {
    "area_sqm": (5.0, 100_000.0),
    "price": (1_000.0, 1e11),
    "bedrooms": (0, 50),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
}


def within(listing: Mapping[str, object]) -> bool:
    """Every bounded field present, a finite number, inside its bounds."""
    for field, (low, high) in LISTING.items():
        value = listing.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
            return False
    return True


def sql_violation() -> str:
    """A SQL condition true for a listings row outside the bounds (NaN and infinities included: they compare outside)."""
    return " OR ".join(f"NOT ({field} BETWEEN {low!r} AND {high!r})" for field, (low, high) in LISTING.items())
