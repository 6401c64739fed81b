"""The API's application config and feature flags: recommendation and valuation models, the A/B test and the in-app
grey release. Rendered into the API's ConfigMap by components/app_config.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, Field

from settings.values import Percent, Settings, Text

RecommendationModel = Literal["hybrid", "collaborative", "content"]


class RecommendationSettings(Settings):
    model: RecommendationModel = "hybrid"
    top_k: Annotated[int, Field(ge=1, le=100)] = 10


class EvaluationSettings(Settings):
    model: Literal["xgboost", "lightgbm", "linear"] = "xgboost"
    confidence_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8


class VariantBSettings(Settings):
    # What variant B does differently: its recommendation model (variant A uses recommendation.model).
    recommendation_model: Optional[RecommendationModel] = None


class AbTestSettings(Settings):
    """Users are split sticky (a hash of their id, app/real_estate_api/assignment.py) into variants A and B."""

    enabled: bool = False
    # Share of users that see variant B.
    variant_b_percent: Percent = 0
    variant_b: VariantBSettings = VariantBSettings()


# The feature switches the API knows (app/real_estate_api/config.py FEATURES; a test keeps the two equal).
FEATURES = ("recommendation", "valuation", "market_analysis")


def _check_feature_names(names) -> Any:
    unknown = [name for name in names if name not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature '{unknown[0]}'; the API knows {', '.join(FEATURES)}")
    return names


class GreyReleaseSettings(Settings):
    """The in-app grey release: `features` are on for `percent` % of users (sticky); testers send `header: on|off`."""

    enabled: bool = False
    percent: Percent = 0
    header: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")] = "X-Grey-Release"
    features: Annotated[list[str], AfterValidator(_check_feature_names)] = []


class AppConfigSettings(Settings):
    name: Text = "real-estate-ai"
    recommendation: RecommendationSettings = RecommendationSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    features: Annotated[dict[str, bool], AfterValidator(_check_feature_names)] = {
        "recommendation": True,
        "valuation": True,
        "market_analysis": True,
    }
    ab_test: AbTestSettings = AbTestSettings()
    grey_release: GreyReleaseSettings = GreyReleaseSettings()
