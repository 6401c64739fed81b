"""`make e2e`: the real Pulumi engine and Kubernetes provider, and a real API server, over a stack derived from test.

Starts the control plane (e2e/controlplane.sh) in a network namespace of its own, applies the CRDs the stacks use
(crds/, vendored upstream copies with their CEL rules), creates what test's cluster owners would have (the
monitoring namespace), starts the labelled fakes of the controllers it does not run (e2e/fake_controllers.py), runs
the cycle (e2e/cycle.py) inside the namespace, and stops everything. Prints `e2e: N passed, M failed` last.

    python -m e2e.run [RUN_DIR]      (root: it makes a network namespace; the toolchain: `make e2e-tools`)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.render import PROJECT, load_stack_config

ROOT = Path(__file__).resolve().parent.parent
E2E = ROOT / "e2e"
BUILD = ROOT / "gotools" / "build.sh"
# The tools the e2e runs (gotools/build.sh names; the Makefile's E2E_TOOLS too).
TOOLS = ["etcd", "kube", "kwok", "pulumi", "kubernetes"]
CRDS = ROOT / "crds"
VERSIONS = ("kube-apiserver v1.36.3, etcd v3.6.17, kwok v0.8.0, Pulumi CLI v3.276.0 (program SDK 3.272.0), "
            "pulumi-resource-kubernetes v4.25.0 (program SDK 4.34.2)")


def main(run: Path) -> int:
    built = subprocess.run([str(BUILD), "--check", *TOOLS], capture_output=True, text=True)
    if built.returncode != 0:
        print("e2e: no built toolchain; `make e2e-tools` builds it (about 19 min cold on 2 cores)", file=sys.stderr)
        return 2
    bin_dir = Path(built.stdout.strip())
    run = run.resolve()
    run.mkdir(parents=True, exist_ok=True)
    (run / "results.json").unlink(missing_ok=True)
    fakes = None
    try:
        subprocess.run([str(E2E / "controlplane.sh"), "start", str(run)], check=True)
        in_namespace = ["ip", "netns", "exec", (run / "netns").read_text().strip()]
        kubectl = [*in_namespace, str(bin_dir / "kubectl"), "--kubeconfig", str(run / "admin.kubeconfig")]
        for crd in sorted(CRDS.glob("*.yaml")):
            subprocess.run([*kubectl, "apply", "--server-side", "-f", str(crd)], check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"], check=True,
                       capture_output=True)
        monitoring = load_stack_config("test").get(f"{PROJECT}:monitoring", "{}")
        namespace = json.loads(monitoring).get("namespace", "monitoring")
        subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
        fakes = subprocess.Popen([sys.executable, "-m", "e2e.fake_controllers", *kubectl], cwd=ROOT,
                                 stdout=(run / "logs" / "fake-controllers.log").open("w"), stderr=subprocess.STDOUT)
        subprocess.run([*in_namespace, sys.executable, "-m", "e2e.cycle", str(run), str(bin_dir)], cwd=ROOT)
    except subprocess.CalledProcessError as error:
        print(f"e2e: setting up the cluster failed: {' '.join(map(str, error.cmd))[-300:]}", file=sys.stderr)
    finally:
        if fakes is not None:
            fakes.terminate()
            fakes.wait()
        subprocess.run([str(E2E / "controlplane.sh"), "stop", str(run)])
    results = json.loads((run / "results.json").read_text()) if (run / "results.json").exists() else []
    failed = [name for name, result in results if result != "ok"] or ([] if results else ["the cycle did not run"])
    print(f"e2e: versions: {VERSIONS}", flush=True)
    print(f"e2e: {len(results) - len(failed) if results else 0} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "e2e"))
