"""How well a listing fits a wish, on a 0–1 scale: the rule engine's ranking and the hybrid model's re-ranking.

    fit = 0.40 · closeness + 0.35 · size fit + 0.25 · rooms fit
    closeness  = 1 − min(1, distance_km / RADIUS_KM)
    size fit   = 1 − min(1, |ln(area / wished area)| / ln 2)     (0 at half or double the wished size)
    rooms fit  = 1 − min(1, |bedrooms − wished bedrooms| / 2)

The budget is not a score but a hard limit: no model, no fallback recommends a listing above it.
"""

from __future__ import annotations

import math

RADIUS_KM = 50.0
WEIGHTS = {"closeness": 0.40, "size": 0.35, "rooms": 0.25}
EARTH_RADIUS_KM = 6371.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def fit(wish, listing: dict) -> float:
    closeness = 1 - min(1.0, distance_km(wish.latitude, wish.longitude, listing["latitude"], listing["longitude"]) / RADIUS_KM)
    size = 1 - min(1.0, abs(math.log(listing["area_sqm"] / wish.area_sqm)) / math.log(2))
    rooms = 1 - min(1.0, abs(listing["bedrooms"] - wish.bedrooms) / 2)
    return WEIGHTS["closeness"] * closeness + WEIGHTS["size"] * size + WEIGHTS["rooms"] * rooms


def rank(wish, listings: list[dict], top_k: int) -> list[dict]:
    """Best fit first; ties keep the order they came in (vector similarity, or nearness for the rule engine)."""
    scored = [{**item, "score": round(fit(wish, item), 4)} for item in listings]
    scored.sort(key=lambda item: -item["score"])
    return scored[:top_k]
