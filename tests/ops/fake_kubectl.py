#!/usr/bin/env python3
"""A stand-in for kubectl on PATH: answers from files in $FAKE_KUBE and logs every call. Never talks to a cluster.

Files: cluster (absent: no such PerconaPGCluster), restores (the list answer), states (restore states, one
per call, the last repeats), primaries (primary pod per call, the last repeats), replicas, in_recovery,
job_succeeded / job_failed (a Job's status counts), repo_host (the repository host pod), snapshot_api (absent: the
cluster has no VolumeSnapshot API), pvcs, snapshot_states ("readyToUse|error" per call), history (the primary's
newest timeline's history, one line per call), standby_enabled (spec.standby.enabled, default true), instance_statuses
(name<TAB>Patroni status annotation per line), replay (the standby leader's replay LSN|newest commit|its age), commit
(txid|timeline on the primary). pgBackRest on the repository host answers from repo<N>/info.json, repo<N>/ls.json and
repo<N>/<history file>; repo<N>/unreachable makes it fail as an unreachable store does.
Applied objects: applied.yaml (the last PerconaPGRestore), applied-restores.yaml and snapshots.yaml (all, in order).
"""

import os
import sys
from pathlib import Path

state = Path(os.environ["FAKE_KUBE"])
args = sys.argv[1:]
with open(state / "calls", "a") as log:
    log.write(" ".join(args) + "\n")
if args[:1] == ["--namespace"]:
    args = args[2:]


def read(name: str, default: str = "") -> str:
    path = state / name
    return path.read_text() if path.exists() else default


def pop(name: str, default: str = "") -> str:
    """Each call takes the next line; the last line stays."""
    lines = read(name, default).splitlines()
    if len(lines) > 1:
        (state / name).write_text("\n".join(lines[1:]) + "\n")
    return lines[0] if lines else ""


verb = args[0]
joined = " ".join(args)
if verb == "create" and args[1] == "configmap":
    print("apiVersion: v1\nkind: ConfigMap")
elif verb in ("create", "scale", "wait", "rollout", "logs"):
    pass
elif verb == "get" and args[1].startswith("job/"):
    print(read("job_succeeded") if "succeeded" in joined else read("job_failed"), end="")
elif verb == "apply":
    document = sys.stdin.read()
    kept = "snapshots.yaml" if "kind: VolumeSnapshot" in document else "applied-restores.yaml"
    with open(state / kept, "a") as out:
        out.write(document + "\n---\n")
    if kept == "applied-restores.yaml":
        (state / "applied.yaml").write_text(document)
elif verb == "api-resources":
    print(read("snapshot_api"), end="")
elif verb == "get" and args[1] == "pvc":
    print(read("pvcs"), end="")
elif verb == "get" and args[1] == "volumesnapshot":
    print(pop("snapshot_states", "true|"), end="")
elif verb == "exec" and "pgbackrest" in args[args.index("--") + 1:args.index("--") + 2]:
    command = args[args.index("--") + 2:]
    repo = next(a.split("=", 1)[1] for a in command if a.startswith("--repo="))
    if (state / f"repo{repo}" / "unreachable").exists():
        print("ERROR: [049]: unable to get address for 'offsite.example': [-2] Name or service not known", file=sys.stderr)
        sys.exit(49)
    if command[0] == "info":
        print(read(f"repo{repo}/info.json"))
    elif command[0] == "repo-ls":
        print(read(f"repo{repo}/ls.json"))
    elif command[0] == "repo-get":
        print(read(f"repo{repo}/" + command[-1].rsplit("/", 1)[-1]), end="")
elif verb == "exec" and "pg_read_file" in joined:
    print(pop("history"))
elif verb == "exec" and "pg_last_wal_replay_lsn" in joined:
    print(read("replay", "0/A000000|1795000000|3").strip())
elif verb == "exec" and "txid_current" in joined and "pg_walfile_name" in joined:
    print(read("commit", "745|2").strip())
elif verb == "annotate":
    pass
elif verb == "exec":
    print(read("in_recovery", "f").strip())
elif verb == "get" and args[1] == "perconapgcluster":
    if not (state / "cluster").exists():
        print(f'Error from server (NotFound): perconapgclusters.pgv2.percona.com "{args[2]}" not found', file=sys.stderr)
        sys.exit(1)
    if "spec.standby.enabled" in joined:
        print(read("standby_enabled", "true").strip(), end="")
    else:
        print("ready" if "status.state" in joined else f"perconapgcluster.pgv2.percona.com/{args[2]}", end="")
elif verb == "get" and args[1] == "perconapgrestore":
    if "range .items" in joined:
        print(read("restores"), end="")
    else:
        print(pop("states", "Running"), end="")
elif verb == "get" and args[1] == "pod":
    # A line of primaries may name several pods (space-separated), as a list answer would.
    if "data=pgbackrest" in joined:
        print(read("repo_host", "pod/postgres-repo-host-0"))
    elif "annotations.status" in joined:
        print(read("instance_statuses"), end="")
    else:
        print(pop("primaries").replace(" ", "\n") if "role=primary" in joined else read("replicas"))
else:
    print(f"fake kubectl: unexpected call {joined}", file=sys.stderr)
    sys.exit(3)
