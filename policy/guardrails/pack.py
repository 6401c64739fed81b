"""The rules of rules.py as pulumi-policy policies (the pack policy/__main__.py serves).

What the analyzer hands a policy is not plain data: pulumi-policy's servicer (policy.py, `Analyze`/`AnalyzeStack`)
decodes the engine's protobuf Struct (every number a double) and wraps it in a proxy (proxy.py `_DictProxy`) that
raises UnknownValueError on any unknown value, which turns the whole policy into an advisory diagnostic. `plain`
copies the props once, numbers as they come and each unknown as rules.UNKNOWN, so a rule judges what is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from pulumi_policy.proxy import UnknownValueError

from . import rules

PACK = "real-estate-ai"


def plain(value):
    """The analyzer's props as dicts and lists, every unknown value replaced by rules.UNKNOWN."""
    if isinstance(value, str) or not isinstance(value, (Mapping, Sequence)):
        return value
    keys = list(value) if isinstance(value, Mapping) else range(len(value))
    items = []
    for key in keys:
        try:
            items.append((key, plain(value[key])))
        except UnknownValueError:
            items.append((key, rules.UNKNOWN))
    return dict(items) if isinstance(value, Mapping) else [item for _, item in items]


def _resource_policy(name: str, description: str, rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rules.judged(args.resource_type):
            return
        for problem in rule(plain(args.props)):
            report_violation(problem, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


def _stack_policy(name: str, description: str, rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [rules.Resource(r.resource_type, plain(r.props), bool(getattr(r.opts, "protect", False)))
                     for r in args.resources if rules.judged(r.resource_type)]
        for problem in rule(resources):
            report_violation(problem, None)

    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY)


def policies() -> list:
    return ([_resource_policy(name, description, rule) for name, (description, rule) in rules.RESOURCE_RULES.items()]
            + [_stack_policy(name, description, rule) for name, (description, rule) in rules.STACK_RULES.items()])
