"""A stack's release: `pulumi up` under a plan (ops/release/plan.py; the policy pack outside dev), then Flagger's
verdict where the API's pods changed (a canary, or the Deployment's rollout where the stack runs none), then the
route. `deploy` first sets the stack's image by digest; rollback uses it, CI's `release` the rest."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from ops.release import plan as plans
from ops.release.monitoring_check import check_monitoring, urls as monitoring_urls
from ops.release.shell import Failed, Steps, run
from ops.release.stack import (
    Stack,
    canary_status,
    check_cluster,
    output,
    running_image,
    serving_deployment,
    wait_for_phase,
    wait_for_postgres,
    wait_for_release,
)
from ops.release.verify import check_route

# The longest analysis at the defaults (2 steps, 5 tolerated failures, the promotion: 8 minutes) with room for
# image pulls and the progress deadline.
DEFAULT_TIMEOUT_SECONDS = 1800


def pod_template(stack: Stack) -> Optional[str]:
    """A fingerprint of the API Deployment's pod template (what Flagger releases), or None where it does not exist."""
    text = run(stack.kubectl("get", "deployment", "api", "--namespace", stack.namespace, "--ignore-not-found",
                             "--output", "jsonpath={.spec.template}"), f"read the API Deployment of stack '{stack.name}'",
               capture=True).strip()
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def release(stack: Stack, steps: Steps, timeout: float = DEFAULT_TIMEOUT_SECONDS, plan: Optional[Path] = None) -> None:
    steps.step(f"checking that stack '{stack.name}' reaches its cluster ({stack.context or 'current context'})")
    check_cluster(stack)
    template = pod_template(stack)
    status = canary_status(stack) if stack.canary else {}
    # What is applied is a plan: the one reviewed elsewhere (CI's plan job), or one made and shown here first.
    plans.apply(stack, steps, plan or plans.save(stack, steps, plans.default_path(stack)))
    # Pulumi's wait on the cluster passes before an update has rolled out (stack.postgres_pending says why).
    steps.step(f"waiting for PostgreSQL's rollout in stack '{stack.name}'")
    wait_for_postgres(stack, timeout)
    changed = pod_template(stack) != template
    if stack.canary and not status:
        # A new Canary (a first deploy, or the canary just switched on): Flagger copies the Deployment to its
        # primary and serves from it, without an analysis.
        steps.step(f"waiting for Flagger to take over the API of stack '{stack.name}'")
        wait_for_phase(stack, ("Initialized", "Succeeded"), timeout)
    elif stack.canary:
        # Unchanged pods still need the last release's verdict: an earlier run may have stopped while it ran.
        steps.step(f"waiting for the canary verdict of stack '{stack.name}'" + ("" if changed else " (pods unchanged: the last release's)"))
        wait_for_release(stack, status.get("lastAppliedSpec") if changed else None, timeout)
    else:
        steps.step(f"waiting for the API's rollout in stack '{stack.name}'")
        run(stack.kubectl("rollout", "status", "deployment/api", "--namespace", stack.namespace, f"--timeout={int(timeout)}s"),
            f"the API's rollout in stack '{stack.name}'")
    steps.step(f"checking stack '{stack.name}' serves the image it was given")
    expected, serving = output(stack, "apiImage"), serving_deployment(stack)
    actual = running_image(stack, serving)
    if actual != expected:
        raise Failed(f"stack '{stack.name}': {serving} runs {actual or 'nothing'}, not {expected}")
    steps.step(f"checking /ready and /version through the route of stack '{stack.name}'")
    check_route(stack, stack.config.api.version)
    if stack.config.monitoring.enabled and monitoring_urls(stack) is None:
        steps.note(f"stack '{stack.name}' names no Prometheus and Alertmanager to ask: its monitoring is not checked")
    elif stack.config.monitoring.enabled:
        steps.step(f"checking the cluster's monitoring loaded the rules of stack '{stack.name}', scrapes its API and routes its alerts")
        check_monitoring(stack)


def set_image(stack: Stack, image: str, version: str, steps: Steps) -> Stack:
    """The stack's config now deploys `image` as `version`; the stack as reloaded from its changed file."""
    if stack.config.api.registry:
        # A stack that builds its own image deploys this one instead until api.registry is set again.
        steps.note(f"stack '{stack.name}' builds its image (api.registry): it now deploys {image} until api.registry is set back")
        run(["pulumi", "config", "rm", "--path", "api.registry", "--stack", stack.name], "stop the stack's own build")
    run(["pulumi", "config", "set", "--path", "api.image", image, "--stack", stack.name], f"set api.image of stack '{stack.name}'")
    run(["pulumi", "config", "set", "--path", "api.version", version, "--stack", stack.name], f"set api.version of stack '{stack.name}'")
    return Stack(stack.name, stack.config.model_copy(update={"api": stack.config.api.model_copy(
        update={"image": image, "version": version, "registry": None})}))


def deploy(stack: Stack, image: str, version: str, steps: Steps, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
    if "@sha256:" not in image:
        raise Failed(f"'{image}' is not pinned by digest; promote and roll back by digest only")
    # Nothing changes in a stack whose cluster does not answer.
    check_cluster(stack)
    steps.step(f"setting stack '{stack.name}' to {image} (version {version})")
    try:
        release(set_image(stack, image, version, steps), steps, timeout)
    except Failed:
        if stack.config.api.image:
            # Flagger kept the previous version serving: the stack's file says so again, so the next `pulumi up`
            # does not release the failed digest anew.
            steps.note(f"stack '{stack.name}' set back to {stack.config.api.image} (version {stack.config.api.version})")
            set_image(stack, stack.config.api.image, stack.config.api.version, steps)
        raise
