"""FAKES of the controllers the e2e control plane does not run, so the real engine's awaits complete. Each writes only
what its controller's source says that controller writes, and nothing here is evidence of how the controller behaves:

- the Percona operator (percona/controller/pgcluster/status.go updateStatus): a PerconaPGCluster's status, `state:
  ready` at its generation with every instance ready;
- a volume provisioner (the StorageClass e2e/controlplane.sh makes default): a PersistentVolume for each pending claim,
  bound to it by claimRef, so the real PV controller binds the pair; the volume is a path that does not exist and is
  retained (the controller manager's hostPath deleter would otherwise remove a released volume's path here);
- Flagger (pkg/router/kubernetes_default.go, pkg/router/gateway_api.go, pkg/canary/status.go): for a Canary, the
  Services <apex>, <apex>-primary, <apex>-canary and the HTTPRoute <apex>, each owned by the Canary (the real garbage
  collector removes them once it is deleted), and the status `Initialized` with `lastPromotedSpec`.

    python -m e2e.fake_controllers KUBECTL... (the kubectl command line, e.g. ip netns exec NS kubectl --kubeconfig K)

Runs until killed, one pass a second.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

LABEL = {"e2e.real-estate-ai/fake": "true"}


class Cluster:
    def __init__(self, kubectl: list[str]):
        self.kubectl = kubectl

    def items(self, resource: str) -> list[dict]:
        done = subprocess.run([*self.kubectl, "get", resource, "--all-namespaces", "--output", "json"],
                              capture_output=True, text=True)
        return json.loads(done.stdout).get("items", []) if done.returncode == 0 else []

    def patch_status(self, resource: str, obj: dict, status: dict) -> None:
        subprocess.run([*self.kubectl, "patch", resource, obj["metadata"]["name"], "--namespace", obj["metadata"]["namespace"],
                        "--subresource", "status", "--type", "merge", "--patch", json.dumps({"status": status})],
                       capture_output=True, text=True)

    def apply(self, obj: dict) -> None:
        subprocess.run([*self.kubectl, "apply", "--server-side", "--field-manager", "e2e-fake-controllers", "-f", "-"],
                       input=json.dumps(obj), capture_output=True, text=True)


def percona(cluster: Cluster) -> None:
    for pg in cluster.items("perconapgclusters.pgv2.percona.com"):
        size = sum(int(s.get("replicas", 1)) for s in pg["spec"].get("instances", []))
        status = {"state": "ready", "observedGeneration": pg["metadata"]["generation"],
                  "postgres": {"size": size, "ready": size},
                  "host": f"{pg['metadata']['name']}-primary.{pg['metadata']['namespace']}.svc"}
        if {k: (pg.get("status") or {}).get(k) for k in status} != status:
            cluster.patch_status("perconapgclusters.pgv2.percona.com", pg, status)


PROVISIONER = "e2e.real-estate-ai/fake-provisioner"


def provisioner(cluster: Cluster) -> None:
    for claim in cluster.items("persistentvolumeclaims"):
        meta = claim["metadata"]
        if claim.get("status", {}).get("phase") != "Pending" or claim["spec"].get("volumeName"):
            continue
        if (meta.get("annotations") or {}).get("volume.kubernetes.io/storage-provisioner") != PROVISIONER:
            continue
        cluster.apply({"apiVersion": "v1", "kind": "PersistentVolume",
                       "metadata": {"name": f"e2e-{meta['uid']}", "labels": LABEL},
                       "spec": {"capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
                                "accessModes": claim["spec"]["accessModes"],
                                "storageClassName": claim["spec"].get("storageClassName", ""),
                                "persistentVolumeReclaimPolicy": "Retain",
                                "hostPath": {"path": f"/nonexistent/e2e-volumes/{meta['uid']}"},
                                "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}})


def _owned(canary: dict, api_version: str, kind: str, name: str, spec: dict) -> dict:
    meta = canary["metadata"]
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": meta["namespace"], "labels": LABEL,
                         "ownerReferences": [{"apiVersion": canary["apiVersion"], "kind": "Canary", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec}


def flagger(cluster: Cluster) -> None:
    for canary in cluster.items("canaries.flagger.app"):
        if canary["metadata"].get("deletionTimestamp"):
            continue
        spec = canary["spec"]
        target = spec["targetRef"]["name"]
        apex = spec["service"].get("name") or target
        port = spec["service"]["port"]
        for name, selector in ((apex, f"{target}-primary"), (f"{apex}-primary", f"{target}-primary"), (f"{apex}-canary", target)):
            cluster.apply(_owned(canary, "v1", "Service", name,
                                 {"selector": {"app": selector}, "ports": [{"name": "http", "port": port}]}))
        cluster.apply(_owned(canary, "gateway.networking.k8s.io/v1", "HTTPRoute", apex, {
            "parentRefs": spec["service"].get("gatewayRefs", []), "hostnames": spec["service"].get("hosts", []),
            "rules": [{"backendRefs": [{"name": f"{apex}-primary", "port": port}]}]}))
        applied = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        status = canary.get("status") or {}
        if status.get("lastAppliedSpec") != applied:
            cluster.patch_status("canaries.flagger.app", canary, {
                "phase": "Initialized", "lastAppliedSpec": applied, "lastPromotedSpec": applied, "canaryWeight": 0})


def main(kubectl: list[str]) -> None:
    cluster = Cluster(kubectl)
    while True:
        provisioner(cluster)
        percona(cluster)
        flagger(cluster)
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1:])
