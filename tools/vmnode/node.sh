#!/bin/bash
# The guest half of tools/vmnode: make this QEMU guest a Kubernetes worker node.
#
# Runs chrooted into the host's root (read-only 9p) as the command of tools/vm. $1 is the
# node's config directory, rendered on the host (tools/vmnode/config.py). Writable state goes
# to RAM: tmpfs on /run/node (binaries), overlays on /var and /etc. Then containerd and the
# kubelet run until the host creates /run/outbox/stop (the run's artefact directory), where
# their logs go too. Lines starting with "vmnode:" are progress, read by the host.
set -euo pipefail
# tools/vm runs this chrooted into /host, a mount below the initramfs's root. runc attaches a
# container's root where its caller's root is attached (/host), but a process that joins the
# container's mount namespace (`kubectl exec`: runc exec, setns) starts at the namespace's top
# root, the initramfs: execs ran there, not in the container. So first re-root, once: a mount
# namespace of the node's own (PID 1's view is untouched), /host moved onto "/" there, as
# switch_root does after an initramfs. The kernel reads firmware from init's root, the
# initramfs: its /var/lib/firmware is bound into the node first (/run/kernel-firmware).
if [ -z "${VMNODE_REROOTED:-}" ]; then
    mkdir -p /proc/1/root/var/lib/firmware
    # shellcheck disable=SC2016 # expanded by the initramfs's sh
    exec nsenter --target 1 --root --wd -- /bin/busybox unshare --mount --propagation private \
        /bin/busybox sh -c 'b=/bin/busybox
            $b mkdir -p /host/run/kernel-firmware \
            && $b mount -o bind /var/lib/firmware /host/run/kernel-firmware \
            && cd /host && $b mount -o move /host / \
            && exec $b chroot . /usr/bin/env VMNODE_REROOTED=1 /bin/bash "$@"' \
        sh "$(readlink -f "$0")" "$@"
fi
CONFIG=$1
# shellcheck source=/dev/null
. "$CONFIG/node.env"
OUT=/run/outbox
export PATH="$NODE_BIN_DIR:$PATH"

t0=$(cut -d' ' -f1 /proc/uptime)
step() { echo "vmnode: $* (guest +$(awk -v a="$t0" '{printf "%.1f", $1 - a}' /proc/uptime)s)"; }
fail() { echo "vmnode: FAILED: $*"; exit 1; }

hostname "$NODE_NAME"
mkdir -p /run/node && mount -t tmpfs -o mode=755 tmpfs /run/node
for d in var etc; do
    mkdir -p "/run/node/$d-upper" "/run/node/$d-work"
    mount -t overlay -o "lowerdir=/$d,upperdir=/run/node/$d-upper,workdir=/run/node/$d-work" \
        overlay "/$d" || fail "overlay on /$d"
done
# KMM's worker writes its firmware directory (/var/lib/firmware) into the kernel's firmware
# search path, which the kernel resolves from init's root: the node's directory is that one
# (bound above), so the path names the same files on both sides, as on a real node (one root).
mkdir -p /var/lib/firmware
mount --bind /run/kernel-firmware /var/lib/firmware || fail "bind /var/lib/firmware"
# containerd's snapshots are overlay mounts themselves: their upper layers cannot be on the
# /var overlay ("invalid argument"), so its root is a tmpfs of its own.
mkdir -p /var/lib/containerd && mount -t tmpfs tmpfs /var/lib/containerd
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "cgroup2"
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
done
step "state on tmpfs, cgroup v2 ($(cat /sys/fs/cgroup/cgroup.subtree_control))"

mkdir -p "$NODE_BIN_DIR" "$NODE_CNI_BIN_DIR"
cp "$NODE_SRC_CONTAINERD" "$NODE_SRC_CONTAINERD_SHIM_RUNC_V2" "$NODE_SRC_CTR" "$NODE_SRC_RUNC" \
    "$NODE_SRC_KUBELET" "$NODE_SRC_CRICTL" "$NODE_BIN_DIR/"
for p in bridge host-local loopback portmap; do cp "$NODE_SRC_CNI/$p" "$NODE_CNI_BIN_DIR/"; done
step "binaries copied to tmpfs ($(du -sm "$NODE_BIN_DIR" | cut -f1) MiB)"

# The kernel cannot autoload modules here (its modprobe helper would run in the initramfs):
# load what the bridge, iptables-nft and the masquerade need up front.
modprobe -a overlay bridge br_netfilter veth nf_tables nft_compat nft_chain_nat nf_nat \
    nf_conntrack xt_conntrack xt_MASQUERADE xt_nat xt_comment xt_addrtype xt_mark \
    xt_multiport xt_tcpudp || fail "modprobe"
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
# The `kubernetes` Service: its endpoint is the API server's forward (the host alias); one DNAT
# rule stands in for kube-proxy (pods and the node itself).
for chain in PREROUTING OUTPUT; do
    iptables -t nat -A "$chain" -d "$NODE_SERVICE_IP/32" -p tcp --dport 443 \
        -j DNAT --to-destination "$NODE_HOST_ALIAS:$NODE_APISERVER_PORT"
done
step "netfilter ready; $NODE_SERVICE_IP:443 -> $NODE_HOST_ALIAS:$NODE_APISERVER_PORT"

mkdir -p "/etc/containerd/certs.d/$NODE_REGISTRY" /etc/cni/net.d /var/lib/kubelet
cp "$CONFIG/hosts.toml" "/etc/containerd/certs.d/$NODE_REGISTRY/hosts.toml"
cp "$CONFIG/10-vmnode.conflist" /etc/cni/net.d/
containerd --config "$CONFIG/containerd.toml" > "$OUT/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 600); do
    ctr version > /dev/null 2>&1 && break
    kill -0 "$containerd_pid" 2> /dev/null || fail "containerd exited (containerd.log)"
    sleep 0.2
done
step "containerd up"
# Images given as `docker save` archives (tools/vmnode/images.py) are imported from the 9p
# share, in order, while the kubelet registers: no gunzip, no HTTP through slirp. Each line of
# import.log names an archive done (the host waits for it: VmNode.wait_imported).
(for archive in $NODE_IMPORT; do
    t=$(cut -d' ' -f1 /proc/uptime)
    if ctr -n k8s.io images import --local --discard-unpacked-layers "$archive" \
        > /dev/null 2>> "$OUT/import.err"; then
        step "imported $archive in $(awk -v a="$t" '{printf "%.1f", $1 - a}' /proc/uptime)s"
    else
        step "import of $archive failed (import.err)"
    fi
done) >> "$OUT/import.log" 2>&1 &
# The big images (driver, module) not given as archives are pulled now, while the kubelet
# registers: a pull through slirp under TCG takes minutes (README.md, "node").
(for image in $NODE_PREPULL; do
    t=$(cut -d' ' -f1 /proc/uptime)
    ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d "$image" > /dev/null \
        && step "pre-pulled $image in $(awk -v a="$t" '{printf "%.0f", $1 - a}' /proc/uptime)s" \
        || step "pre-pull of $image failed (the kubelet pulls it when a pod needs it)"
done) >> "$OUT/prepull.log" 2>&1 &

kubelet --config="$CONFIG/kubelet.yaml" --kubeconfig="$CONFIG/kubeconfig" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=2 > "$OUT/kubelet.log" 2>&1 &
kubelet_pid=$!
step "kubelet started"

while [ ! -e "$OUT/stop" ]; do
    kill -0 "$kubelet_pid" 2> /dev/null || fail "kubelet exited (kubelet.log)"
    kill -0 "$containerd_pid" 2> /dev/null || fail "containerd exited (containerd.log)"
    sleep 1
done
step "stop requested"
lsmod > "$OUT/lsmod.txt"
kill "$kubelet_pid" 2> /dev/null || true
wait "$kubelet_pid" 2> /dev/null || true
kill "$containerd_pid" 2> /dev/null || true
wait "$containerd_pid" 2> /dev/null || true
step "stopped"
