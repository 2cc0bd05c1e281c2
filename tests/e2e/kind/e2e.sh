#!/usr/bin/env bash
# make e2e-kind-kmm: the chart on a real kind cluster with KMM, then the e2e notebooks in kind mode.
#
#   1. a local registry (container $REGISTRY_NAME, localhost:$REGISTRY_HOST_PORT on this host)
#   2. a kind cluster (kind-config.yaml: Kubernetes 1.37, CDI in containerd, DRA feature gates,
#      /lib/modules and /lib/firmware from this host) that pulls from that registry over HTTP
#   3. cert-manager and Kernel Module Management (pinned in lib.sh)
#   4. the driver image (images/driver/Containerfile) and the module image for this host's
#      kernel (images/kmod/Containerfile), pushed to the registry
#   5. for KMM mode prebuilt, then build: nbs/e2e/*.ipynb with papermill in kind mode (the
#      install notebook runs `helm upgrade --install` with write_values' values), then
#      `helm uninstall` and wait until KMM has unloaded the module
#   6. teardown on any exit: the cluster and the registry (KEEP_CLUSTER=1 keeps them)
#
# Needs: Linux x86-64, Docker, curl, python3 with this repository's dev extra (make py-deps),
# the firmware (make firmware). A kernel whose version names no distribution family (a custom
# build) needs KMOD_DISTRO=fedora|rhel|debian|ubuntu for the module image's builder stage.
# kind, kubectl and helm are downloaded at pinned versions when
# missing. The module is loaded into THIS host's kernel (kind nodes share it); KMM copies the
# firmware into this host's /lib/firmware. Executed notebooks: artifacts/e2e-kind-kmm/<mode>/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

PYTHON=${PYTHON:-python3}
MODES=${MODES:-prebuilt build}
OUT=${OUT:-$repo/artifacts/e2e-kind-kmm}
KERNEL=$(uname -r)
NODE="${CLUSTER_NAME}-control-plane"
work=$(mktemp -d "${TMPDIR:-/tmp}/mock-accel-kind-XXXXXX")
created_registry=false
KIND="" KUBECTL="" HELM=""

teardown() {
	local status=$?
	if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
		say "keeping cluster $CLUSTER_NAME and registry $REGISTRY_NAME (KEEP_CLUSTER=1)"
		say "kubeconfig: $work/kubeconfig"
		exit "$status"
	fi
	say "tearing down"
	if [[ -n $KIND ]] && cluster_exists; then
		"$KIND" delete cluster --name "$CLUSTER_NAME" || true
	fi
	if $created_registry; then
		docker rm -f "$REGISTRY_NAME" >/dev/null || true
	fi
	rm -rf "$work"
	exit "$status"
}
trap teardown EXIT

preflight() {
	[[ $(uname -s) == Linux && $(uname -m) == x86_64 ]] || die "needs Linux on x86-64"
	command -v docker >/dev/null || die "needs docker"
	docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer"
	command -v curl >/dev/null || die "needs curl"
	command -v git >/dev/null || die "needs git (kubectl apply -k fetches KMM's kustomization)"
	"$PYTHON" -c 'import papermill, pandas, matplotlib, mock_accel' 2>/dev/null ||
		die "python3 lacks the dev extra: run make py-deps"
	[[ -f $repo/firmware/mock-accel-wordlist.txt ]] || die "no firmware: run make firmware"
	[[ -d /lib/modules/$KERNEL ]] || die "no /lib/modules/$KERNEL on this host"
	KIND=$(tool kind "$KIND_VERSION")
	KUBECTL=$(tool kubectl "$KUBECTL_VERSION")
	HELM=$(tool helm "$HELM_VERSION")
	say "kind $("$KIND" version | awk '{print $2}'), kubectl $KUBECTL_VERSION, helm $HELM_VERSION; kernel $KERNEL"
}

kubectl_() { "$KUBECTL" --kubeconfig "$work/kubeconfig" "$@"; }

# (output captured before matching: with pipefail, `cmd | grep -q` can fail on SIGPIPE)
cluster_exists() {
	local clusters
	clusters=$("$KIND" get clusters 2>/dev/null) || return 1
	grep -qx "$CLUSTER_NAME" <<<"$clusters"
}

start_registry() {
	if [[ $(docker inspect -f '{{.State.Running}}' "$REGISTRY_NAME" 2>/dev/null || true) == true ]]; then
		say "registry $REGISTRY_NAME already running"
		return
	fi
	say "starting registry $REGISTRY_NAME ($REGISTRY_IMAGE) on 127.0.0.1:$REGISTRY_HOST_PORT"
	docker run -d --restart=always --name "$REGISTRY_NAME" \
		-p "127.0.0.1:${REGISTRY_HOST_PORT}:5000" "$REGISTRY_IMAGE" >/dev/null
	created_registry=true
}

create_cluster() {
	if cluster_exists; then
		die "a kind cluster $CLUSTER_NAME exists already: kind delete cluster --name $CLUSTER_NAME"
	fi
	say "creating kind cluster $CLUSTER_NAME"
	"$KIND" create cluster --name "$CLUSTER_NAME" --config "$here/kind-config.yaml" \
		--kubeconfig "$work/kubeconfig" --wait 180s
	# the registry joins the cluster's network; containerd pulls from it over plain HTTP
	local attached
	attached=$(docker network inspect kind -f '{{range .Containers}}{{.Name}} {{end}}')
	if [[ " $attached " != *" $REGISTRY_NAME "* ]]; then
		docker network connect kind "$REGISTRY_NAME"
	fi
	local node
	for node in $("$KIND" get nodes --name "$CLUSTER_NAME"); do
		docker exec "$node" mkdir -p "/etc/containerd/certs.d/$REGISTRY_IN_CLUSTER"
		printf '[host."http://%s"]\n' "$REGISTRY_IN_CLUSTER" |
			docker exec -i "$node" tee "/etc/containerd/certs.d/$REGISTRY_IN_CLUSTER/hosts.toml" >/dev/null
	done
	kubectl_ apply -f - <<-EOF
	apiVersion: v1
	kind: ConfigMap
	metadata:
	  name: local-registry-hosting
	  namespace: kube-public
	data:
	  localRegistryHosting.v1: |
	    host: "$REGISTRY_ON_HOST"
	    hostFromClusterNetwork: "$REGISTRY_IN_CLUSTER"
	EOF
	# DRA objects served, CDI on: what the driver needs from the cluster
	[[ $(kubectl_ api-resources --api-group=resource.k8s.io -o name) == *deviceclasses* ]] ||
		die "the cluster does not serve resource.k8s.io DeviceClasses"
	docker exec "$NODE" grep -q 'enable_cdi = true' /etc/containerd/config.toml ||
		die "CDI is not enabled in the node's containerd"
}

install_kmm() {
	say "installing cert-manager $CERT_MANAGER_VERSION"
	kubectl_ apply -f "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
	kubectl_ -n cert-manager wait --for=condition=Available --timeout=300s \
		deployment/cert-manager deployment/cert-manager-cainjector deployment/cert-manager-webhook
	say "installing Kernel Module Management $KMM_REF"
	# the webhook of cert-manager may need a moment after Available: retry the apply
	wait_for 180 "KMM's manifests to apply" kubectl_ apply -k \
		"https://github.com/kubernetes-sigs/kernel-module-management/config/default?ref=${KMM_REF}"
	kubectl_ -n kmm-operator-system wait --for=condition=Available --timeout=300s deployment --all
}

build_images() {
	say "building $DRIVER_IMAGE:$IMAGE_TAG (images/driver/Containerfile)"
	docker build -f "$repo/images/driver/Containerfile" -t "$REGISTRY_ON_HOST/$DRIVER_IMAGE:$IMAGE_TAG" "$repo"
	docker push "$REGISTRY_ON_HOST/$DRIVER_IMAGE:$IMAGE_TAG"
	say "building $MODULE_IMAGE:$KERNEL (images/kmod/Containerfile) for this host's kernel"
	docker build -f "$repo/images/kmod/Containerfile" --build-arg "KERNEL_FULL_VERSION=$KERNEL" \
		--build-arg "KMOD_DISTRO=${KMOD_DISTRO:-auto}" -t "$REGISTRY_ON_HOST/$MODULE_IMAGE:$KERNEL" "$repo"
	docker push "$REGISTRY_ON_HOST/$MODULE_IMAGE:$KERNEL"
}

module_loaded() { docker exec "$NODE" grep -q '^mock_accel ' /proc/modules; }

run_mode() {
	local mode=$1 values="$work/values-$1.yaml" out="$OUT/$1"
	write_values "$mode" "$KERNEL" "$values"
	say "KMM $mode mode: notebooks in kind mode -> $out"
	rm -rf "$out"
	PATH="$(dirname "$KUBECTL"):$(dirname "$HELM"):$PATH" \
		"$PYTHON" -m tests.e2e.run_notebooks --out "$out" -p mode kind \
		-p kubeconfig "$work/kubeconfig" -p release "$RELEASE" -p namespace "$CHART_NAMESPACE" \
		-p values_file "$values" -p kmm_mode "$mode" -p kind_nodes "$NODE" \
		-p workload_image "$REGISTRY_IN_CLUSTER/$DRIVER_IMAGE:$IMAGE_TAG" \
		-p workload_namespace "mock-accel-e2e-$mode" -p artifacts "$out" -p timeout 300
	say "KMM $mode mode: uninstalling; waiting for KMM to unload the module"
	"$HELM" --kubeconfig "$work/kubeconfig" uninstall "$RELEASE" --namespace "$CHART_NAMESPACE" --wait
	local start=$SECONDS
	while module_loaded; do
		((SECONDS - start < 300)) || die "mock_accel is still loaded 300s after helm uninstall"
		sleep 3
	done
}

main() {
	cd "$repo"
	preflight
	start_registry
	create_cluster
	install_kmm
	build_images
	local mode
	for mode in $MODES; do
		run_mode "$mode"
	done
	say "kind e2e passed (KMM modes: $MODES); executed notebooks in $OUT"
}

main "$@"
