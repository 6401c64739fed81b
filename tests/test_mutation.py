"""tools/mutation.py: the mutants it makes and the equivalents it excludes — and CI's time-boxed share of mutation
testing: a fixed sample of the settings' mutants, each of which the module's edge tests must catch, so a new rule
that arrives without the tests that would notice a wrong value fails `make test`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tools import mutation

# The modules whose first test file is a fast edge-test file; a sample of their mutants runs in every `make test`.
GUARDED = ["settings/values.py", "settings/cron.py", "settings/rules.py", "settings/release.py", "settings/routing.py",
           "settings/postgres.py", "settings/monitoring.py", "settings/platform.py", "settings/loading.py",
           "settings/app_config.py", "settings/slo.py", "policy/guardrails/rules.py", "components/alerting.py"]


def test_regex_mutants_cover_bounds_anchors_repetition_and_every_class_range():
    found = dict((what, mutated) for what, mutated in mutation.regex_mutations(r"^[a-z0-9_]{1,3}x+$"))
    assert found == {
        "regex {1,3} at 10 → {1,4} (bound +1)": r"^[a-z0-9_]{1,4}x+$",
        "regex {1,3} at 10 → {1,2} (bound -1)": r"^[a-z0-9_]{1,2}x+$",
        "regex without ^": r"[a-z0-9_]{1,3}x+$",
        "regex without $": r"^[a-z0-9_]{1,3}x+",
        "regex + → * at 16": r"^[a-z0-9_]{1,3}x*$",
        "regex class at 1 without a-z": r"^[0-9_]{1,3}x+$",
        "regex class at 1 without 0-9": r"^[a-z_]{1,3}x+$",
    }
    # A class left empty, or a pattern that no longer compiles, is no mutant.
    assert mutation.regex_mutations(r"[a-z]{2}") == [("regex {2} at 5 → {3} (bound +1)", r"[a-z]{3}")]
    assert mutation.regex_mutations(r"\[a-z\]") == []


SAMPLE_MODULE = '''
from typing import Annotated, Literal
from pydantic import AfterValidator, BaseModel, model_validator
Kind = Annotated[str, AfterValidator(str.strip)]
ROLES = {"admin", "viewer"}
class S(BaseModel):
    mode: Literal["fast", "safe"] = "safe"
    @model_validator(mode="after")
    def _check(self):
        return self
def f(name, values):
    if name.lower().startswith("kube-"):
        return min(values[1:])
    return any(v in ROLES for v in values)
'''


def test_the_value_operators_make_these_mutants_and_nothing_else():
    found = {m.what for m in mutation.mutants("sample.py", SAMPLE_MODULE)} - {
        # the older operators' (numbers, comparisons) on the same lines
        "1 → 2", "1 → 0", "In → NotIn"}
    assert found == {
        "Annotated without AfterValidator", "set without 'admin'", "set without 'viewer'", "string 'admin' → 'adminx'",
        "string 'viewer' → 'viewerx'", "string 'fast' → 'fastx'", "string 'safe' → 'safex'",
        "tuple without 'fast'", "tuple without 'safe'",  # a Literal's choices
        "default 'safe' changed", "validator _check removed", "startswith → endswith", "string 'kube-' → 'kube-x'",
        ".lower() dropped", "early return removed", "min → max", "slice without its lower bound", "any → all",
    }
    source = {m.what: m.source for m in mutation.mutants("sample.py", SAMPLE_MODULE)}
    assert "Kind = Annotated[str, None]" in source["Annotated without AfterValidator"]
    assert "if name.startswith('kube-'):" in source[".lower() dropped"]
    assert "@model_validator" not in source["validator _check removed"]
    assert "ROLES = {'viewer'}" in source["set without 'admin'"]
    assert "min(values[:])" in source["slice without its lower bound"]


def test_every_target_module_and_test_file_exists():
    for module, tests in mutation.TARGETS.items():
        assert (mutation.ROOT / module).is_file(), module
        for test in tests:
            assert (mutation.ROOT / test).is_file(), (module, test)


def test_every_listed_equivalent_is_a_current_mutant_with_a_reason():
    # A listed mutant that no longer exists (the code moved) would silently excuse nothing, or another mutant.
    listed = mutation.equivalents()
    current = {m.id for module in {i.split(":", 1)[0] for i in listed} for m in mutation.mutants(module)}
    assert listed
    for mutant_id, reason in listed.items():
        assert mutant_id in current, f"{mutant_id} is no longer a mutant: update tools/mutation-equivalent.txt"
        assert len(reason) > 20, mutant_id


def test_guarded_modules_lead_with_their_edge_tests():
    for module in GUARDED:
        first = mutation.TARGETS[module][0]
        assert first.startswith("tests/test_") and first not in ("tests/test_settings.py", "tests/test_release.py"), module


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MUTATION_SAMPLE") == "0", reason="MUTATION_SAMPLE=0 skips the sampled run")
def test_a_fixed_sample_of_the_settings_mutants_is_caught_by_their_edge_tests():
    per_module = os.environ.get("MUTATION_SAMPLE", "3")
    done = subprocess.run(
        [sys.executable, "-m", "tools.mutation", "--edge-tests-only", "--sample", per_module, "--seed", "13",
         "--jobs", "2", "--timeout", "120", "--fail-under", "100", *(arg for m in GUARDED for arg in ("--module", m))],
        cwd=mutation.ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
