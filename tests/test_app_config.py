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
