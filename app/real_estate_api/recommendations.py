"""Recommendations and their fault plan.

    cache hit                → the cached answer (its source kept)
    Milvus answers           → vector search (`source: vector`); hybrid re-ranks the 3 × top_k nearest by fit
    Milvus down, slow, open  → the rule engine over PostgreSQL (`source: rules`, cached only briefly, so answers
                               switch back to vectors soon after Milvus recovers)
    both down                → 503 naming PostgreSQL

Models: `content` ranks by vector similarity; `hybrid` by fit (ranking.py) among the most similar; `collaborative`
has no interaction history in this service to learn from and ranks as `content` does. Every model and the rule engine
keep to the budget (price ≤ budget). The answer does not depend on who asks, so the cache key leaves out user_id.

When Redis comes back without this pod's marker (restarted empty, flushed), `rebuild()` recomputes the wishes this
pod was asked most recently into it (warm-up); every pod refills its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict

from real_estate_api.bounds import within
from real_estate_api.metrics import Metrics
from real_estate_api.ranking import RADIUS_KM, rank
from real_estate_api.stores import DependencyUnavailable, Stores, listing_vector
from real_estate_api.text import UnsafeFilterValue

log = logging.getLogger("real_estate_api.recommendations")

CACHE_TTL_SECONDS = {"vector": 300, "rules": 30}
HYBRID_CANDIDATES = 3
RULE_CANDIDATES = 200
# Wishes remembered for the warm-up after Redis lost its data.
RECENT_WISHES = 1000


def cache_key(model: str, top_k: int, wish: dict) -> str:
    question = {k: v for k, v in wish.items() if k != "user_id"}
    return "rec:v2:" + hashlib.sha256(json.dumps([model, top_k, question], sort_keys=True).encode()).hexdigest()


class Recommender:
    def __init__(self, stores: Stores, metrics: Metrics):
        self._stores = stores
        self._metrics = metrics
        self._recent: OrderedDict[str, tuple] = OrderedDict()

    async def recommend(self, wish, model: str, top_k: int) -> dict:
        key = cache_key(model, top_k, wish.model_dump())
        self._remember(key, (wish, model, top_k))
        available, cached = await self._stores.cache.get(key)
        if cached is not None:
            self._metrics.recommendation_cache.labels("hit").inc()
            return {"cache": "hit", **cached}
        self._metrics.recommendation_cache.labels("miss" if available else "unavailable").inc()
        answer = await self._answer(wish, model, top_k)
        if available:
            await self._stores.cache.put(key, answer, CACHE_TTL_SECONDS[answer["source"]])
        return {"cache": "miss" if available else "unavailable", **answer}

    async def _answer(self, wish, model: str, top_k: int, count: bool = True) -> dict:
        try:
            items = await self._vector(wish, model, top_k)
            source = "vector"
        except (DependencyUnavailable, UnsafeFilterValue) as error:
            if isinstance(error, DependencyUnavailable) and error.dependency != self._stores.vectors.name:
                raise
            if isinstance(error, UnsafeFilterValue):
                # A value the vector filter cannot express (text.py): the rule engine needs no filter syntax.
                log.warning("vector filter refused a value; answering from the rule engine", extra={"reason": str(error)})
            items = rank(wish, await self._stores.postgres.candidates(
                wish.city, wish.budget, wish.latitude, wish.longitude, RADIUS_KM, RULE_CANDIDATES), top_k)
            source = "rules"
        if count:
            self._metrics.recommendation_source.labels(source).inc()
        return {"source": source, "items": items}

    async def _vector(self, wish, model: str, top_k: int) -> list[dict]:
        vector = listing_vector(wish.budget, wish.area_sqm, wish.bedrooms, wish.latitude, wish.longitude)
        # Milvus may still hold a listing PostgreSQL quarantined (schema.py): outside its bounds it is no answer.
        if model == "hybrid":
            hits = await self._stores.vectors.search(vector, min(100, top_k * HYBRID_CANDIDATES), wish.city, wish.budget)
            return rank(wish, [hit for hit in hits if within(hit)], top_k)
        return [hit for hit in await self._stores.vectors.search(vector, top_k, wish.city, wish.budget) if within(hit)]

    def _remember(self, key: str, question: tuple) -> None:
        self._recent[key] = question
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_WISHES:
            self._recent.popitem(last=False)

    async def rebuild(self) -> None:
        """Recompute this pod's recently asked wishes into an empty cache, most recent first; stop at the first failure.
        Not counted in the request metrics: nobody asked."""
        rebuilt = 0
        for key, (wish, model, top_k) in reversed(list(self._recent.items())):
            try:
                answer = await self._answer(wish, model, top_k, count=False)
                await self._stores.cache.refill(key, answer, CACHE_TTL_SECONDS[answer["source"]])
            except DependencyUnavailable as error:
                log.warning("cache rebuild stopped", extra={"entries": rebuilt, "dependency": error.dependency, "reason": error.reason})
                break
            rebuilt += 1
        self._metrics.cache_rebuilt.inc(rebuilt)
        log.info("cache rebuilt", extra={"entries": rebuilt})
