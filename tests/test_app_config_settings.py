"""The API's config and feature-flag settings (settings/app_config.py) at their edges: defaults, bounds on both
sides, the grey-release header pattern, and feature names the API knows."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings.app_config import (
    FEATURES,
    AbTestSettings,
    AppConfigSettings,
    EvaluationSettings,
    GreyReleaseSettings,
    RecommendationSettings,
)
from tests.test_values import errors


def test_app_config_defaults():
    assert AppConfigSettings().model_dump() == {
        "name": "real-estate-ai", "recommendation": {"model": "hybrid", "top_k": 10},
        "evaluation": {"model": "xgboost", "confidence_threshold": 0.8},
        "features": {"recommendation": True, "valuation": True, "market_analysis": True},
        "ab_test": {"enabled": False, "variant_b_percent": 0, "variant_b": {"recommendation_model": None}},
        "grey_release": {"enabled": False, "percent": 0, "header": "X-Grey-Release", "features": []}}


def test_recommendations_per_request():
    assert [RecommendationSettings(top_k=k).top_k for k in (1, 100)] == [1, 100]
    assert errors(RecommendationSettings, top_k=0) == ["Input should be greater than or equal to 1"]
    assert errors(RecommendationSettings, top_k=101) == ["Input should be less than or equal to 100"]


def test_the_model_confidence_is_above_zero_and_at_most_one():
    assert EvaluationSettings(confidence_threshold=1).confidence_threshold == 1
    assert EvaluationSettings(confidence_threshold=0.001).confidence_threshold == 0.001
    assert errors(EvaluationSettings, confidence_threshold=0) == ["Input should be greater than 0"]
    assert errors(EvaluationSettings, confidence_threshold=1.001) == ["Input should be less than or equal to 1"]


@pytest.mark.parametrize("value,ok", [
    ("X-Grey-Release", True), ("A", True), ("z", True), ("9", True), ("aA", True), ("az", True), ("a9", True),
    ("X" + "a" * 63, True), ("X" + "a" * 64, False), ("-X", False), ("X-Grey!", False), ("X_Grey", False), ("", False),
])
def test_grey_release_header(value, ok):
    if ok:
        assert GreyReleaseSettings(header=value).header == value
    else:
        assert errors(GreyReleaseSettings, header=value)


def test_feature_names_are_the_apis():
    assert FEATURES == ("recommendation", "valuation", "market_analysis")
    assert GreyReleaseSettings(features=["valuation"]).features == ["valuation"]
    unknown = "Value error, unknown feature 'pricing'; the API knows recommendation, valuation, market_analysis"
    assert errors(GreyReleaseSettings, features=["valuation", "pricing", "rent"]) == [unknown]
    assert errors(AppConfigSettings, features={"pricing": True}) == [unknown]
    assert AppConfigSettings(features={"valuation": False}).features == {"valuation": False}
    assert AbTestSettings(enabled=True, variant_b_percent=20).variant_b.recommendation_model is None


@pytest.mark.parametrize("model,field,choices", [
    ("RecommendationSettings", "model", ["hybrid", "collaborative", "content"]),
    ("EvaluationSettings", "model", ["xgboost", "lightgbm", "linear"]),
])
def test_every_model_choice_is_taken_and_its_near_misses_are_not(model, field, choices):
    import settings.app_config as app_config

    kind = getattr(app_config, model)
    for choice in choices:
        assert getattr(kind.model_validate({field: choice}), field) == choice
        for near_miss in (choice.upper(), choice + "x"):
            with pytest.raises(ValidationError, match="Input should be "):
                kind.model_validate({field: near_miss})
