#!/usr/bin/env bash
# A local Kubernetes control plane for the e2e: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (fake nodes whose pods turn Ready and whose claims bind), built by gotools/build.sh, inside a network namespace of its
# own whose only interface is loopback: nothing in it can dial an address off this machine.
#
#   e2e/controlplane.sh start RUN_DIR    start it (RUN_DIR: certificates, kubeconfig, data, logs); needs root
#   e2e/controlplane.sh stop RUN_DIR     stop it and delete the namespace
# Then: ip netns exec "$(cat RUN_DIR/netns)" kubectl --kubeconfig RUN_DIR/admin.kubeconfig ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:?usage: controlplane.sh start|stop RUN_DIR}"
run="$(mkdir -p "${2:?usage: controlplane.sh start|stop RUN_DIR}" && cd "$2" && pwd)"
NODES=3

stop() {
  # Reverse order, one at a time: etcd must outlive the API server.
  if [[ -f "$run/pids" ]]; then
    tac "$run/pids" | while read -r pid name; do
      kill -TERM "$pid" 2>/dev/null || continue
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null && echo "controlplane: killed $name after 20 s" >&2 || true
    done
    rm -f "$run/pids"
  fi
  if [[ -f "$run/netns" ]]; then ip netns del "$(cat "$run/netns")" 2>/dev/null || true; rm -f "$run/netns"; fi
}

if [[ "$action" == stop ]]; then stop; exit 0; fi
[[ "$action" == start ]] || { echo "usage: controlplane.sh start|stop RUN_DIR" >&2; exit 2; }
bin="$("$here/../gotools/build.sh" --check etcd kube kwok)" || { echo "controlplane: no built toolchain; run make e2e-tools" >&2; exit 1; }
[[ -f "$run/pids" ]] && { echo "controlplane: already running in $run (stop it first)" >&2; exit 1; }
# Any failure from here on (set -e, a function's too, or an explicit exit) stops what was started.
trap stop EXIT
mkdir -p "$run/pki" "$run/logs"
rm -rf "$run/etcd"

netns="e2e-$$"
ip netns add "$netns"
echo "$netns" >"$run/netns"
in_ns=(ip netns exec "$netns")
"${in_ns[@]}" ip link set lo up
interfaces="$("${in_ns[@]}" ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
[[ "$interfaces" == "lo " ]] || { echo "controlplane: the namespace has more than loopback: $interfaces" >&2; exit 1; }

# Certificates: one CA; the API server's serving certificate; a client certificate per component.
pki="$run/pki"
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key"
openssl req -x509 -new -key "$pki/ca.key" -days 30 -subj "/CN=e2e-ca" -out "$pki/ca.crt" 2>/dev/null
certificate() { # name common-name organization [subject-alt-names]
  local name=$1 cn=$2 org=$3 san=${4:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "/CN=$cn${org:+/O=$org}" -out "$pki/$name.csr" 2>/dev/null
  { echo "keyUsage=critical,digitalSignature"
    if [[ -n "$san" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi; } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}
certificate apiserver kube-apiserver "" "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc"
certificate admin e2e-admin system:masters
certificate controller-manager system:kube-controller-manager ""
certificate scheduler system:kube-scheduler ""
certificate kwok kwok system:masters "IP:127.0.0.1"
certificate front-proxy front-proxy-client ""
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key"
openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
for user in admin controller-manager scheduler kwok; do
  cat >"$run/$user.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$pki/ca.crt"}}]
users: [{name: $user, user: {client-certificate: "$pki/$user.crt", client-key: "$pki/$user.key"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: $user}}]
current-context: e2e
EOF
done

launch() { # name command...
  local name=$1; shift
  setsid "${in_ns[@]}" "$@" >"$run/logs/$name.log" 2>&1 </dev/null &
  echo "$! $name" >>"$run/pids"
}
kubectl() { "${in_ns[@]}" "$bin/kubectl" --kubeconfig "$run/admin.kubeconfig" "$@"; }
await() { # what seconds command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "controlplane: $what not within $seconds s (logs: $run/logs)" >&2; return 1
}

launch etcd "$bin/etcd" --name=e2e --data-dir="$run/etcd" \
  --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=e2e=http://127.0.0.1:2380 --unsafe-no-fsync=true --log-level=warn
await "etcd" 30 "${in_ns[@]}" curl -sf http://127.0.0.1:2379/health
# The endpoint reconciler would publish 127.0.0.1 as the kubernetes Service's endpoint, which the API refuses.
launch kube-apiserver "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 --endpoint-reconciler-type=none \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range=10.96.0.0/16 --authorization-mode=RBAC \
  --requestheader-client-ca-file="$pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$pki/front-proxy.crt" --proxy-client-key-file="$pki/front-proxy.key" --profiling=false
await "the API server's /readyz" 120 kubectl get --raw /readyz
launch kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$run/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$run/controller-manager.kubeconfig" --authorization-kubeconfig="$run/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --controllers='*,-node-ipam-controller' --root-ca-file="$pki/ca.crt" \
  --service-account-private-key-file="$pki/sa.key" --use-service-account-credentials=true \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" --profiling=false
launch kube-scheduler "$bin/kube-scheduler" --kubeconfig="$run/scheduler.kubeconfig" \
  --authentication-kubeconfig="$run/scheduler.kubeconfig" --authorization-kubeconfig="$run/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false
launch kwok "$bin/kwok" --kubeconfig="$run/kwok.kubeconfig" --config="$bin/kwok-stages.yaml" \
  --manage-all-nodes=true --node-ip=127.0.0.1 --node-port=10247 --server-address=127.0.0.1:10247 \
  --tls-cert-file="$pki/kwok.crt" --tls-private-key-file="$pki/kwok.key" --node-lease-duration-seconds=40
await "the default ServiceAccount" 60 kubectl get serviceaccount default --namespace default

# Claims get volumes from e2e/fake_controllers.py (a labelled fake provisioner) and the real PV controller binds them.
kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: e2e-volume, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: e2e.real-estate-ai/fake-provisioner
reclaimPolicy: Retain
allowVolumeExpansion: true
volumeBindingMode: Immediate
EOF
# Three nodes in three zones: the stacks spread replicas and PostgreSQL instances across zones.
for n in $(seq 0 $((NODES - 1))); do
  kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$n
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-node-$n, kubernetes.io/os: linux, kubernetes.io/arch: amd64, topology.kubernetes.io/zone: zone-$n}
EOF
  # The platform's pods request node disk (ephemeral-storage), which kwok's default node status leaves out.
  kubectl patch node "kwok-node-$n" --subresource=status --type=merge --patch \
    '{"status": {"capacity": {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "250"},
                 "allocatable": {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "250"}}}' >/dev/null
done
await "$NODES Ready nodes" 60 kubectl wait --for=condition=Ready node --all --timeout=1s
trap - EXIT
echo "controlplane: up in namespace $netns; kubeconfig $run/admin.kubeconfig"
