"""Sticky per-user assignment to the A/B variant and to the grey-release cohort.

A user is identified by the `X-User-ID` header, else the `uid` cookie, else the request body's `user_id`
(recommendations). The bucket is the first 8 bytes of sha256("<experiment>:<user id>") modulo 10 000, so a
user keeps the same answer on every pod and every request, and raising a percentage only adds users.
The two experiments hash with different names, so being in variant B says nothing about the grey cohort.
Anonymous requests get the defaults: variant A, outside the grey cohort.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from real_estate_api.config import Properties

USER_HEADER = "x-user-id"
USER_COOKIE = "uid"
USER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BUCKETS = 10_000


def bucket(experiment: str, user_id: str) -> int:
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _in_share(experiment: str, user_id: Optional[str], percent: int) -> bool:
    return user_id is not None and bucket(experiment, user_id) < percent * BUCKETS // 100


@dataclass(frozen=True)
class Assignment:
    variant: str  # "a" or "b": bounded, so it can be a metrics label
    grey: bool
    recommendation_model: str

    def feature_on(self, properties: Properties, name: str) -> bool:
        """A switched-off feature is off for everyone; a feature in the grey release is on only for its cohort."""
        if not properties.feature_enabled(name):
            return False
        release = properties.grey_release
        if release.enabled and name in release.features:
            return self.grey
        return True

    @property
    def cohort(self) -> str:
        """In or out of the grey release: the X-Grey-Cohort header and the business metrics' `cohort` label."""
        return "in" if self.grey else "out"

    def headers(self) -> dict[str, str]:
        return {"X-Variant": self.variant, "X-Grey-Cohort": self.cohort}


def user_id(headers: Mapping[str, str], cookies: Mapping[str, str], body_user_id: Optional[str] = None) -> Optional[str]:
    for candidate in (headers.get(USER_HEADER), cookies.get(USER_COOKIE), body_user_id):
        if candidate and USER_ID.match(candidate):
            return candidate
    return None


def assign(properties: Properties, user: Optional[str], headers: Mapping[str, str], tester: bool = False) -> Assignment:
    ab = properties.ab_test
    variant = "b" if ab.enabled and _in_share("ab_test", user, ab.variant_b_percent) else "a"
    release = properties.grey_release
    grey = False
    if release.enabled:
        # Testers (the tester key checked by the caller): "<header>: on" joins the cohort, "off" leaves it, whatever
        # their hash says. Anyone else's header is ignored.
        override = headers.get(release.header.lower(), "").strip().lower() if tester else ""
        grey = override == "on" or (override != "off" and _in_share("grey_release", user, release.percent))
    return Assignment(
        variant=variant,
        grey=grey,
        recommendation_model=ab.variant_b_model if variant == "b" else properties.recommendation_model,
    )
