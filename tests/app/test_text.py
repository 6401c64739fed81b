"""One definition of a place name for the request schema and every store (real_estate_api/text.py): the names real
places have in any script pass everywhere — schema, PostgreSQL, the vector filter, real milvus-lite — and everything
else is a 422 naming the character, never a 500; a value the filter cannot hold is answered by the rule engine."""

import uuid

import pytest

from real_estate_api.app import RecommendationIn
from real_estate_api.stores import string_literal
from real_estate_api.text import PLACE_MAX, UnsafeFilterValue, filter_literal_problem, place_problem
from tests.app.helpers import AUTH, SHANGHAI, add_listings

# Persian with a zero-width non-joiner, Hindi and Sinhala with zero-width joiners, Tamil and Bengali marks, Arabic,
# Chinese, Latin with diacritics and punctuation, digits.
PLACES = ["می\u200cدان", "क्\u200dष", "ශ්\u200dරී ලංකා", "தஞ்சாவூர்", "বাংলা", "الرياض", "上海", "São Paulo",
          "O'Brien Town", "St. John's", "Winston-Salem", "Saint-Étienne", "Rue_Nord", "1st District", "a" * PLACE_MAX]


@pytest.mark.parametrize("place", PLACES)
def test_real_place_names_pass_the_schema_and_the_filter(place):
    assert place_problem(place) is None
    assert filter_literal_problem(place) is None and string_literal(place).startswith('"')


@pytest.mark.parametrize("value,problem", [
    ("", "must be 1 to 64 characters"),
    ("a" * (PLACE_MAX + 1), "must be 1 to 64 characters"),
    (" Leading", "must start with a letter, a digit or '_', not ' ' (U+0020)"),
    ("\u200dJoined", "must start with a letter, a digit or '_', not '\\u200d' (U+200D)"),
    ("\u0301Accent", "must start with a letter, a digit or '_', not '\\u0301' (U+0301)"),
    ("Line\nBreak", "may not contain '\\n' (U+000A)"),
    ("Nul\x00", "may not contain '\\x00' (U+0000)"),
    ("Para\u2028Sep", "may not contain '\\u2028' (U+2028)"),
    ('Quote"d', "may not contain '\"' (U+0022)"),
    ("Back\\slash", "may not contain '\\\\' (U+005C)"),
    ("Emoji\U0001F3E0", "may not contain '\\U0001f3e0' (U+1F3E0)"),
    ("Right\u202eLeft", "may not contain '\\u202e' (U+202E)"),
    ("Unassigned\u0378", "may not contain '\\u0378' (U+0378)"),
])
def test_everything_else_is_refused_naming_the_character(value, problem):
    assert place_problem(value) == problem


def test_the_filter_refuses_only_what_it_cannot_escape():
    for value in ("a\nb", "a\x00b", "a\u2028b", "a\u2029b", "a\ud800b"):
        with pytest.raises(UnsafeFilterValue):
            string_literal(value)
    # Format characters and quotes are escaped or held raw.
    assert string_literal('a"\u200db') == '"a\\"\u200db"'


@pytest.mark.server
def test_a_joined_name_is_a_422_or_a_search_never_a_500(client):
    city = f"می\u200cدان {uuid.uuid4().hex[:4]}"
    (listing,) = add_listings(client, city, SHANGHAI, [900_000])
    wish = {"user_id": "buyer", "city": city, "budget": 1_000_000, "area_sqm": 100, "bedrooms": 3, **SHANGHAI}
    body = client.post("/v1/recommendations", json=wish, headers=AUTH).json()
    assert body["source"] == "vector" and [item["listing_id"] for item in body["items"]] == [listing]
    valuation = client.post("/v1/valuations", json={"city": city, "area_sqm": 100, "bedrooms": 3}, headers=AUTH)
    assert valuation.status_code == 200  # valued from its one comparable, as any city
    refused = client.post("/v1/recommendations", json={**wish, "city": "Line\nBreak"}, headers=AUTH)
    assert refused.status_code == 422 and "may not contain '\\\\n' (U+000A)" in refused.text


@pytest.mark.server
def test_a_value_the_filter_cannot_hold_is_answered_by_the_rule_engine(client):
    # Past the schema (a row stored by an earlier release, a caller inside the pod): the recommender must not 500.
    recommender = client.app.state.recommender
    wish = RecommendationIn.model_construct(user_id="buyer", city="Line\nBreak", budget=1_000_000, area_sqm=100,
                                            bedrooms=3, top_k=None, **SHANGHAI)
    answer = client.portal.call(recommender._answer, wish, "hybrid", 5)
    assert answer["source"] == "rules" and answer["items"] == []
