"""What the Pulumi engine and the Kubernetes provider do across a stack's life, reproduced from their sources where no
engine runs: which objects a delete would fail on, which switches make the engine create a name that still exists.
Each test names the upstream code whose behaviour it holds the program to."""

from __future__ import annotations

import pytest

from tests.harness import STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_every_patch_is_retained_on_delete(stack, rendered_stacks):
    """pulumi-kubernetes deletes a Patch resource by relinquishing its fields (provider/pkg/await/await.go Deletion →
    ssa.Relinquish). A resized claim's size is then the patch's alone and required: the API server refuses, and
    provider/pkg/provider/provider.go Delete fails naming retainOnDelete. Every patch amends an object created by
    another owner, which decides that object's life."""
    patches = [r for r in rendered_stacks[stack].registrations if r.type.endswith("Patch")]
    assert patches, "the stack registers no Patch: this test checks nothing"
    assert [r.name for r in patches if not r.retain_on_delete] == []
