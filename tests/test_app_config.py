from pathlib import Path

from components.app_config import AppConfig, AppConfigArgs, render_properties
from settings import AppConfigSettings, GreyReleaseSettings
from tests.harness import run_component, value


def _properties(text):
    return dict(line.split("=", 1) for line in text.splitlines())


def test_properties_carry_the_spec_defaults():
    props = _properties(render_properties(AppConfigSettings(), "1.2.3", "prod"))
    assert props["app.name"] == "real-estate-ai"
    assert props["app.version"] == "1.2.3"
    assert props["recommendation.model"] == "hybrid"
    assert props["recommendation.top_k"] == "10"
    assert props["evaluation.model"] == "xgboost"
    assert props["evaluation.confidence_threshold"] == "0.8"
    assert props["feature.valuation.enabled"] == "true"


def test_config_map_and_checksum_follow_the_settings():
    base = AppConfigSettings()
    grey = AppConfigSettings(grey_release=GreyReleaseSettings(enabled=True, percent=10))
    rendered, first = run_component(lambda: AppConfig("c", AppConfigArgs("estate", "test", "test", "1.0.0", base)))
    _, same = run_component(lambda: AppConfig("c", AppConfigArgs("estate", "test", "test", "1.0.0", base)))
    _, changed = run_component(lambda: AppConfig("c", AppConfigArgs("estate", "test", "test", "1.0.0", grey)))
    assert value(first.config_map_name) == "api-config"
    data = rendered.find("ConfigMap", "api-config")["data"]
    assert list(data) == ["app.properties"]
    assert data["app.properties"] == render_properties(base, "1.0.0", "test")
    assert first.checksum == same.checksum != changed.checksum
    assert len(first.checksum) == 64


def test_a_flag_change_rolls_the_api_pods(rendered_stacks):
    from tests.harness import decoded_config, encode_config, with_value
    from tools.render import render

    before = rendered_stacks["test"].find("Deployment", "api")["spec"]["template"]["metadata"]["annotations"]
    config = with_value(decoded_config("test"), "appConfig.features", {"recommendation": False, "valuation": True})
    after = render("test", encode_config(config)).find("Deployment", "api")["spec"]["template"]["metadata"]["annotations"]
    assert before["real-estate-ai/config-checksum"] != after["real-estate-ai/config-checksum"]


def test_no_value_can_add_a_line_to_app_properties():
    import pytest

    from components.app_config import render_properties
    from settings import AppConfigSettings

    # model_construct skips validation: the builder's own check is what is tested here.
    hostile = AppConfigSettings.model_construct(**{**AppConfigSettings().__dict__, "name": "estate\nfeature.valuation.enabled=false"})
    with pytest.raises(ValueError, match="would not be one line"):
        render_properties(hostile, "1.0.0", "prod")


def test_the_api_reads_back_every_name_the_settings_take_exactly():
    """The consumer of app.properties is the API's own loader: what it reads is what the stack file said."""
    import sys

    from components.app_config import render_properties
    from settings import AppConfigSettings

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "app"))
    from real_estate_api.config import _parse_properties

    for name in ("Estate = #1 \\ 'x' \"y\" !", "# not a comment", "! bang", "key=value=more", "中文名 ✓ 🏠", "a" * 128,
                 "tab-free  double  spaces", "${HOME} $(id) `id`"):
        settings = AppConfigSettings(name=name)
        assert _parse_properties(render_properties(settings, "1.0.0", "prod"), "app.properties")["app.name"] == name


def test_the_api_accepts_the_properties_of_every_stack(rendered_stacks, tmp_path):
    """The consumer reads what the program renders: the API's own loader, unknown keys refused."""
    import sys

    from tests.app.conftest import APP_DIR

    sys.path.insert(0, str(APP_DIR))
    from real_estate_api.config import load_properties

    for stack, rendered in rendered_stacks.items():
        path = tmp_path / f"{stack}.properties"
        path.write_text(rendered.find("ConfigMap", "api-config")["data"]["app.properties"])
        properties = load_properties(path)
        assert properties.environment == stack
    test = load_properties(tmp_path / "test.properties")
    assert test.ab_test.enabled and test.ab_test.variant_b_percent == 10 and test.ab_test.variant_b_model == "content"


def test_the_settings_know_exactly_the_apis_features():
    import sys

    from settings import FEATURES
    from tests.app.conftest import APP_DIR

    sys.path.insert(0, str(APP_DIR))
    from real_estate_api import config

    assert set(FEATURES) == config.FEATURES


def test_grey_release_features_and_the_variant_b_model_are_rendered():
    from settings import AbTestSettings, VariantBSettings

    settings = AppConfigSettings(
        ab_test=AbTestSettings(enabled=True, variant_b_percent=25, variant_b=VariantBSettings(recommendation_model="content")),
        grey_release=GreyReleaseSettings(enabled=True, percent=5, features=["valuation", "market_analysis"]),
    )
    props = _properties(render_properties(settings, "1.0.0", "test"))
    assert props["ab_test.variant_b.recommendation_model"] == "content" and props["ab_test.variant_b_percent"] == "25"
    assert props["grey_release.features"] == "valuation,market_analysis" and props["grey_release.percent"] == "5"
