"""The base of every platform component: children are named after the component, so two instances of one
component type (two Redis, two object stores) never register the same URN."""

from __future__ import annotations

from typing import Optional

import pulumi


class Component(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(type_, name, None, opts)
        self._component_name = name

    def child_name(self, name: str) -> str:
        """A child's Pulumi name: this component's name, then the child's (Kubernetes names are unaffected)."""
        return f"{self._component_name}-{name}"
