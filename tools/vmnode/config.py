"""The node's configuration files, rendered on the host (pure functions, no I/O).

Everything the guest's node script (node.sh) needs is written into one host directory that the
guest reads over 9p: containerd's config and registry hosts, the CNI config, the kubelet's
configuration, kubeconfig and serving certificate, and `node.env` for the script itself. The
API server's egress selector (apiserver → kubelet through proxy.py) is rendered here too.
"""
from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

GUEST_IP = "10.0.2.15"        # slirp's guest address (tools/vm GUEST_ADDRESS)
HOST_ALIAS = "10.0.2.100"     # the guestfwd address standing for the host's 127.0.0.1
KUBELET_PORT = 10250
SERVICE_IP = "10.0.0.1"       # the `kubernetes` Service (mock_accel.cluster's range 10.0.0.0/24)
POD_CIDR = "10.244.0.0/24"
BIN_DIR = "/run/node/bin"     # guest tmpfs: the hot binaries are copied here from 9p
CNI_BIN_DIR = "/run/node/cni"
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


@dataclass(frozen=True)
class NodeSpec:
    """What the guest node is: its name, where the API server and the registry are."""
    name: str
    apiserver_port: int                 # the host's 127.0.0.1 port, the same in the guest
    registry: str                       # host:port of the image registry, e.g. 127.0.0.1:5001
    pause_image: str                    # full reference, pulled from `registry`
    prepull: tuple[str, ...] = ()       # images node.sh pulls as soon as containerd runs
    feature_gates: Mapping[str, bool] = field(default_factory=dict)
    imports: tuple[str, ...] = ()       # `docker save` archives (host paths) node.sh imports


def containerd_config(spec: NodeSpec) -> str:
    """containerd 2's config (v2 format, migrated on load): CRI with runc on cgroupfs, CDI,
    the CNI plugins on tmpfs, registry hosts in /etc/containerd/certs.d, our pause image."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join([
        "version = 2",
        'root = "/var/lib/containerd"',
        'state = "/run/containerd"',
        f"[{cri}]",
        f"  sandbox_image = {json.dumps(spec.pause_image)}",
        "  enable_cdi = true",
        '  cdi_spec_dirs = ["/etc/cdi", "/var/run/cdi"]',
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f'  BinaryName = "{BIN_DIR}/runc"',
        f"[{cri}.cni]",
        f'  bin_dir = "{CNI_BIN_DIR}"',
        '  conf_dir = "/etc/cni/net.d"',
        f"[{cri}.registry]",
        '  config_path = "/etc/containerd/certs.d"',
        "",
    ])


def registry_hosts(registry: str) -> str:
    """`certs.d/<registry>/hosts.toml` for `127.0.0.1:<port>`: plain HTTP, pulled straight from
    the host alias (slirp hands each connection to the host's 127.0.0.1:<port>), not through
    the guest's own forwarder on 127.0.0.1, a busybox nc per connection under TCG."""
    port = registry.rpartition(":")[2]
    return (f'server = "http://{registry}"\n'
            f'[host."http://{HOST_ALIAS}:{port}"]\n  capabilities = ["pull", "resolve"]\n')


def cni_config() -> str:
    """One bridge for the node's pods; traffic leaving POD_CIDR is masqueraded to GUEST_IP, so
    the API server's forward (HOST_ALIAS) answers pods as it answers the node."""
    return json.dumps({
        "cniVersion": "1.0.0", "name": "mock-accel-vmnode",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ]}, indent=2) + "\n"


def kubelet_config(spec: NodeSpec, *, ca: str, cert: str, key: str) -> str:
    """KubeletConfiguration: x509 + webhook authentication (the API server's kubelet client
    certificate), webhook authorization, cgroupfs on cgroup v2, no eviction thresholds (the
    guest's disk is RAM), no cluster DNS (the slice does not need one)."""
    return yaml.safe_dump({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": GUEST_IP, "port": KUBELET_PORT,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": ca}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": cert, "tlsPrivateKeyFile": key,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "failSwapOn": False, "resolvConf": "/etc/resolv.conf",
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "0%",
                         "imagefs.available": "0%", "nodefs.inodesFree": "0%"},
        "imageGCHighThresholdPercent": 100,
        "serializeImagePulls": False,
        "featureGates": dict(spec.feature_gates),
        "nodeStatusReportFrequency": "10s",
    }, sort_keys=True)


def node_env(spec: NodeSpec, binaries: Mapping[str, str], config_dir: str) -> str:
    """`node.env`, sourced by node.sh: where things are and what to forward."""
    values = {
        "NODE_NAME": spec.name, "NODE_IP": GUEST_IP, "NODE_CONFIG": config_dir,
        "NODE_BIN_DIR": BIN_DIR, "NODE_CNI_BIN_DIR": CNI_BIN_DIR,
        "NODE_SERVICE_IP": SERVICE_IP, "NODE_HOST_ALIAS": HOST_ALIAS,
        "NODE_APISERVER_PORT": str(spec.apiserver_port), "NODE_REGISTRY": spec.registry,
        "NODE_POD_CIDR": POD_CIDR, "NODE_PREPULL": " ".join(spec.prepull),
        "NODE_IMPORT": " ".join(spec.imports),
        **{f"NODE_SRC_{name.upper().replace('-', '_')}": path
           for name, path in sorted(binaries.items())},
    }
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def egress_selector(socket_path: str) -> str:
    """EgressSelectorConfiguration: the API server's `cluster` traffic (kubelets, pods,
    services) through an HTTP CONNECT proxy on a Unix socket (proxy.py)."""
    return yaml.safe_dump({
        "apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
        "egressSelections": [{"name": "cluster", "connection": {
            "proxyProtocol": "HTTPConnect",
            "transport": {"uds": {"udsName": socket_path}}}}],
    }, sort_keys=False)
