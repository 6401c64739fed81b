"""The base of every platform component: children are named after the component, so two instances of one
component type (two Redis, two object stores) never register the same URN."""

from __future__ import annotations

from typing import Optional

import pulumi


class Component(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, opts: Optional[pulumi.ResourceOptions] = None):
        self._component_name = name
        super().__init__(type_, name, None, pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(transformations=[self._alias_unprefixed_name])))

    def child_name(self, name: str) -> str:
        """A child's Pulumi name: this component's name, then the child's (Kubernetes names are unaffected)."""
        return f"{self._component_name}-{name}"

    def _alias_unprefixed_name(self, args: pulumi.ResourceTransformationArgs) -> Optional[pulumi.ResourceTransformationResult]:
        """Stacks deployed before children were named after their component (commit cddf95b) hold every child, the
        Kubernetes provider included, under its bare name: an alias to it lets the engine find them instead of
        replacing each one (tests/urns/ lists every URN a deployed stack may hold)."""
        prefix = f"{self._component_name}-"
        if args.opts.parent is not self or not args.name.startswith(prefix):
            return None
        alias = pulumi.Alias(name=args.name[len(prefix):])
        return pulumi.ResourceTransformationResult(
            args.props, pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(aliases=[alias])))
