#!/bin/bash
# mock-accel-cni: on a node of the offline kind image (tools/kind/README.md), what kindnetd does
# on kind's own image, with nothing but what the node has (bash, kubectl, iproute2, iptables).
# It waits for the kubelet's kubeconfig and this Node's spec.podCIDR (kube-controller-manager
# gives each node a /24 of kind's podSubnet), writes the bridge CNI config for that subnet (the
# kubelet keeps the node NotReady until one exists), then keeps a route to every other node's
# podCIDR via that node's InternalIP, and masquerades only what leaves every node's podCIDR.
# The nodes come from one `kubectl get nodes --watch` (a kubectl start costs CPU: polling every
# 5 s was 12 starts a minute on every node); the watch is restarted every RESYNC s (a full list:
# the safety net for a missed event) and after a failure.
set -u
KUBECONFIG=${MOCK_ACCEL_CNI_KUBECONFIG:-/etc/kubernetes/kubelet.conf}
CONF_DIR=${MOCK_ACCEL_CNI_DIR:-/etc/cni/net.d}
CONF=$CONF_DIR/10-mock-accel-bridge.conflist
NODE=${MOCK_ACCEL_CNI_NODE:-$(hostname)}
RESYNC=${MOCK_ACCEL_CNI_RESYNC:-300}  # seconds a watch lasts before a fresh list
PROTO=77              # the protocol number of our routes: the ones we own and prune
CHAIN=MOCK-ACCEL-MASQ

log() { echo "mock-accel-cni: $*"; }

k() { kubectl --kubeconfig "$KUBECONFIG" --request-timeout 10s "$@"; }

# one line per node and change: the event (ADDED, MODIFIED, DELETED), name, podCIDR, InternalIP;
# first every node (ADDED), then the changes, for RESYNC s
watch_nodes() {
  timeout "$RESYNC" kubectl --kubeconfig "$KUBECONFIG" get nodes --watch --output-watch-events \
    -o jsonpath='{.type}{" "}{.object.metadata.name}{" "}{.object.spec.podCIDR}{" "}{.object.status.addresses[?(@.type=="InternalIP")].address}{"\n"}'
}

write_conf() {
  local tmp="$CONF_DIR/.mock-accel-bridge.tmp"
  mkdir -p "$CONF_DIR"
  cat >"$tmp" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "mock-accel-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$1"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  mv -f "$tmp" "$CONF"  # atomic: containerd never reads half a file
}

# routes to the other nodes' podCIDRs; ours that no node has any more go
sync_routes() {
  local name cidr ip want=" "
  while read -r name cidr ip; do
    [ "$name" = "$NODE" ] && continue
    [ -n "$cidr" ] && [ -n "$ip" ] || continue
    ip route replace "$cidr" via "$ip" proto $PROTO && want+="$cidr "
  done <<<"$1"
  for cidr in $(ip route show proto $PROTO | cut -d' ' -f1); do
    [[ "$want" == *" $cidr "* ]] || { ip route del "$cidr" proto $PROTO; log "route to $cidr removed"; }
  done
}

# pods' traffic to any node's podCIDR keeps its source address; the rest is masqueraded
sync_masq() {
  local own=$1 name cidr ip rules
  rules="*nat"$'\n'":$CHAIN - [0:0]"$'\n'
  while read -r name cidr ip; do
    [ -n "$cidr" ] && rules+="-A $CHAIN -d $cidr -j RETURN"$'\n'
  done <<<"$2"
  rules+="-A $CHAIN -j MASQUERADE"$'\n'"COMMIT"$'\n'
  iptables-restore --noflush <<<"$rules" || return 1
  iptables -t nat -C POSTROUTING -s "$own" -j $CHAIN 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$own" -j $CHAIN
}

# the table of one watch: its events applied, a burst (the first list) synced once at its end
follow() {
  local own=$1 type name cidr ip table last=""
  local -A nodes=()
  while read -r type name cidr ip; do
    while :; do
      case $type in
        DELETED) unset "nodes[$name]" ;;
        ADDED | MODIFIED) nodes[$name]="$name $cidr $ip" ;;
      esac
      read -r -t 0.5 type name cidr ip || break
    done
    table=$(printf '%s\n' "${nodes[@]}" | sort)
    sync_routes "$table"
    if [ "$table" != "$last" ]; then
      sync_masq "$own" "$table" && last=$table
      log "nodes: $(tr '\n' ';' <<<"$table")"
    fi
  done
}

main() {
  local cidr="" said="" err=/run/mock-accel-cni.err
  log "node $NODE: waiting for $KUBECONFIG and the node's podCIDR"
  until [ -s "$KUBECONFIG" ] &&
    cidr=$(k get node "$NODE" -o jsonpath='{.spec.podCIDR}' 2>/dev/null) && [ -n "$cidr" ]; do
    sleep 1
  done
  write_conf "$cidr"
  log "wrote $CONF for $cidr"
  while :; do
    watch_nodes 2>"$err" | follow "$cidr"
    if [ ! -s "$err" ]; then
      said=""  # the RESYNC timeout: no reason
    elif [ "$(cat "$err")" != "$said" ]; then  # each new reason once
      said=$(cat "$err")
      log "watch of the nodes ended: $said"
    fi
    sleep 2
  done
}

main
