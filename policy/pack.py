"""The rules of policy/rules.py as pulumi-policy policies (the pack policy/__main__.py serves)."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy import rules

PACK = "real-estate-ai"


def _resource_policy(name: str, description: str, rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rules.judged(args.resource_type):
            return
        for problem in rule(args.props):
            report_violation(problem, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY)


def _stack_policy(name: str, description: str, rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [rules.Resource(r.resource_type, r.props, bool(getattr(r.opts, "protect", False)))
                     for r in args.resources if rules.judged(r.resource_type)]
        for problem in rule(resources):
            report_violation(problem, None)

    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY)


def policies() -> list:
    return ([_resource_policy(name, description, rule) for name, (description, rule) in rules.RESOURCE_RULES.items()]
            + [_stack_policy(name, description, rule) for name, (description, rule) in rules.STACK_RULES.items()])
