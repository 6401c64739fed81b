"""The e2e stack (e2e/cycle.py) is test's stack file, changed only where this machine cannot do what test's cluster
does; `make e2e` itself runs the real engine (it needs root and the built toolchain)."""

from __future__ import annotations

from settings import PlatformConfig, plain_values
from tests.harness import decoded_config
from tools.render import PROJECT, encode_config

from e2e.cycle import GIVEN_SECRETS, IMAGE, STACK, stack_config


def test_the_e2e_stack_is_test_with_only_what_this_machine_lacks_changed():
    config, secret_keys = stack_config("/run/e2e/admin.kubeconfig")
    test = decoded_config("test")
    changed = {key for key in set(config) | set(test) if config.get(key) != test.get(key)}
    assert changed == {f"{PROJECT}:{key}" for key in ("kubernetes", "api", "postgres", "backups", "milvus", "protectData",
                                                      *GIVEN_SECRETS)}
    assert config[f"{PROJECT}:kubernetes"] == {"kubeconfig": "/run/e2e/admin.kubeconfig"}
    assert config[f"{PROJECT}:api"]["image"] == IMAGE and "registry" not in config[f"{PROJECT}:api"]
    assert {k: v for k, v in config[f"{PROJECT}:api"].items() if k != "image"} == \
        {k: v for k, v in test[f"{PROJECT}:api"].items() if k != "registry"}
    assert set(secret_keys) == {f"{PROJECT}:{key}" for key in GIVEN_SECRETS}
    assert STACK.startswith("test-")
    # What the program validates: the stack's own rules pass.
    raw = {key.removeprefix(f"{PROJECT}:"): value for key, value in encode_config(config).items() if key.startswith(f"{PROJECT}:")}
    parsed = PlatformConfig.model_validate(plain_values(raw))
    assert parsed.environment == "test" and parsed.release.canary.enabled and not parsed.backups.enabled
