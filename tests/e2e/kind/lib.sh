# shellcheck shell=bash
# Functions and pinned versions of the kind e2e run (sourced by e2e.sh; the pytest checks in
# tests/e2e/test_kind_scripts.py source it too, to render the chart with the very same values).

# shellcheck disable=SC2034  # constants for e2e.sh
KIND_VERSION=${KIND_VERSION:-v0.33.0}
KUBECTL_VERSION=${KUBECTL_VERSION:-v1.37.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CERT_MANAGER_VERSION=${CERT_MANAGER_VERSION:-v1.21.2}
KMM_REF=${KMM_REF:-v2.6.0}
REGISTRY_IMAGE=${REGISTRY_IMAGE:-docker.io/library/registry:2.8.3}

CLUSTER_NAME=${CLUSTER_NAME:-mock-accel-e2e}
REGISTRY_NAME=${REGISTRY_NAME:-mock-accel-registry}
REGISTRY_HOST_PORT=${REGISTRY_HOST_PORT:-5001}
# how the node's containerd and the cluster's pods (KMM's build pod) reach the registry
REGISTRY_IN_CLUSTER="${REGISTRY_NAME}:5000"
# how this host pushes to it
REGISTRY_ON_HOST="localhost:${REGISTRY_HOST_PORT}"
IMAGE_TAG=${IMAGE_TAG:-e2e}
DRIVER_IMAGE=mock-accel-dra-driver
MODULE_IMAGE=mock-accel-module
RELEASE=${RELEASE:-mock-accel}
CHART_NAMESPACE=${CHART_NAMESPACE:-mock-accel}
TOOLS_DIR=${TOOLS_DIR:-${HOME}/.cache/mock-accel/kind-tools}

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The values the chart is installed with in KMM mode $1 (prebuilt | build) for kernel $2,
# written as YAML to $3.
write_values() {
	local mode=$1 kernel=$2 out=$3
	case $mode in
		prebuilt | build) ;;
		*) die "write_values: mode must be prebuilt or build, not '$mode'" ;;
	esac
	{
		# e2e.sh's helm runs with --create-namespace (helm keeps its release record there)
		printf 'namespace:\n  create: false\n'
		printf 'draDriver:\n'
		printf '  controller:\n    image:\n'
		printf '      repository: %s/%s\n      tag: %s\n' "$REGISTRY_IN_CLUSTER" "$DRIVER_IMAGE" "$IMAGE_TAG"
		printf '  nodeAgent:\n    image:\n'
		printf '      repository: %s/%s\n      tag: %s\n' "$REGISTRY_IN_CLUSTER" "$DRIVER_IMAGE" "$IMAGE_TAG"
		printf 'kernelModule:\n  enabled: true\n  mode: %s\n' "$mode"
		printf '  image:\n    repository: %s/%s\n    tag: "%s"\n' "$REGISTRY_IN_CLUSTER" "$MODULE_IMAGE" "$kernel"
		printf '  parameters:\n    num_vfs: 4\n'
		# the local registry speaks plain HTTP: KMM checks, pulls and pushes over HTTP
		printf '  registryTLS:\n    insecure: true\n'
		if [[ $mode == prebuilt ]]; then
			# the image e2e.sh built for this host's kernel, and only that kernel
			printf '  kernelMappings:\n    - literal: "%s"\n' "$kernel"
		else
			printf '  build:\n    image:\n      repository: %s/%s-build\n      tag: "%s"\n' \
				"$REGISTRY_IN_CLUSTER" "$MODULE_IMAGE" "$IMAGE_TAG"
		fi
	} >"$out"
}

# A tool at a pinned version: the one on PATH when its version matches, else a checksummed
# download into $TOOLS_DIR/<version>/. Prints the path.
tool() {
	local name=$1 url sum
	local dir="${TOOLS_DIR}/$name-$2"
	case $name in
		kind)
			if command -v kind >/dev/null && [[ $(kind version) == *" $KIND_VERSION "* ]]; then
				command -v kind; return
			fi
			url="https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-linux-amd64"; sum="$url.sha256sum" ;;
		kubectl)
			if command -v kubectl >/dev/null && [[ $(kubectl version --client 2>/dev/null) == *"Client Version: $KUBECTL_VERSION"* ]]; then
				command -v kubectl; return
			fi
			url="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl"; sum="$url.sha256" ;;
		helm)
			if command -v helm >/dev/null && [[ $(helm version --template '{{.Version}}') == "$HELM_VERSION" ]]; then
				command -v helm; return
			fi
			url="https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz"; sum="$url.sha256sum" ;;
		*) die "tool: unknown tool $name" ;;
	esac
	if [[ ! -x $dir/$name ]]; then
		say "downloading $name $2" >&2
		mkdir -p "$dir"
		curl -fsSL --retry 3 -o "$dir/download" "$url" || die "cannot download $url"
		local want
		want=$(curl -fsSL --retry 3 "$sum" | awk '{print $1}') || die "cannot download $sum"
		echo "$want  $dir/download" | sha256sum -c --quiet - >&2 || die "$name: checksum mismatch"
		if [[ $name == helm ]]; then
			tar -xzf "$dir/download" -C "$dir" --strip-components=1 linux-amd64/helm
			rm -f "$dir/download"
		else
			mv "$dir/download" "$dir/$name"
		fi
		chmod +x "$dir/$name"
	fi
	echo "$dir/$name"
}

# Wait (up to $1 seconds) until the command after it succeeds; $2 says what for.
wait_for() {
	local seconds=$1 what=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS - start < seconds)) || die "timed out after ${seconds}s waiting for $what"
		sleep 3
	done
}
