#!/bin/sh
# PID 1 of the mock-accel test VM (runs from the initramfs, busybox only).
#
# 1. mounts the host root (virtio-9p tag "hostroot", read-only) at /host and
#    the per-run "outbox" share (writable) at /outbox;
# 2. sources /outbox/job.sh, written by the host for this run, which defines
#    JOB_KO, JOB_INTERACTIVE, job_insmod and job_run;
# 3. loads the module under test, runs the command chrooted into /host with
#    its output in /outbox/output.log, saves dmesg and the exit code, powers off.
#
# Lines starting with "@@mock-accel-vm@@" on the console are progress markers
# parsed by the host (tools/vm/guest.py).
/bin/busybox --install -s /bin
PATH=/bin
export PATH
MARK="@@mock-accel-vm@@"
NINEP_OPTS="trans=virtio,version=9p2000.L,msize=512000"

mark() { echo "$MARK $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
power_off() {
    sync
    poweroff -f
    sleep 10
}
fatal() {
    mark "fatal $*"
    power_off
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mark "stage kernel-up uptime=$(uptime_s)"

while read -r module; do
    insmod "/modules/$module" || fatal "cannot insmod /modules/$module"
done < /modules/load-order

mount -t 9p -o "$NINEP_OPTS,ro,cache=loose" hostroot /host \
    || fatal "cannot mount the host root (9p tag hostroot)"
mount -t 9p -o "$NINEP_OPTS" outbox /outbox \
    || fatal "cannot mount the outbox (9p tag outbox)"
mount -t proc proc /host/proc || fatal "cannot mount /host/proc"
mount -t sysfs sysfs /host/sys || fatal "cannot mount /host/sys"
mount -t devtmpfs devtmpfs /host/dev || fatal "cannot mount /host/dev"
# /tmp: writable, but still showing the host's /tmp (overlay over a tmpfs),
# so files a test put under the host /tmp stay visible. Plain tmpfs if
# overlayfs refuses the 9p lower layer.
mkdir -p /scratch
mount -t tmpfs -o mode=755 tmpfs /scratch || fatal "cannot mount /scratch"
mkdir -p /scratch/tmp-upper /scratch/tmp-work
chmod 1777 /scratch/tmp-upper
mount -t overlay -o lowerdir=/host/tmp,upperdir=/scratch/tmp-upper,workdir=/scratch/tmp-work \
        overlay /host/tmp 2>/dev/null \
    || mount -t tmpfs -o mode=1777 tmpfs /host/tmp \
    || fatal "cannot mount /host/tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run 2>/dev/null
# the outbox inside the chroot too: a long-running command leaves its logs there
mkdir -p /host/run/outbox && mount -o bind /outbox /host/run/outbox 2>/dev/null
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm 2>/dev/null
mount -t debugfs debugfs /host/sys/kernel/debug 2>/dev/null
mark "stage host-mounted uptime=$(uptime_s)"

[ -r /outbox/job.sh ] || fatal "no /outbox/job.sh"
. /outbox/job.sh

# Only with JOB_NETWORK (run_in_guest(host_ports=... or guest_ports=...)): the NIC is on QEMU's
# restricted user network, where a connection to $JOB_HOST_ALIAS:<port> reaches
# the host's 127.0.0.1:<port>. A forwarder per port makes that the guest's own
# 127.0.0.1:<port>, so URLs and TLS names valid on the host work unchanged.
start_network() {
    while read -r module; do
        insmod "/modules/$module" || fatal "cannot insmod /modules/$module"
    done < /modules/net-load-order
    ip link set lo up || fatal "cannot bring up lo"
    iface=""
    tries=0
    while [ -z "$iface" ]; do
        for dev in /sys/class/net/*; do
            [ "${dev##*/}" = lo ] || { iface="${dev##*/}"; break; }
        done
        [ -n "$iface" ] && break
        tries=$((tries + 1))
        [ "$tries" -lt 200 ] || fatal "no network interface appeared"
        sleep 0.1
    done
    ip addr add "$JOB_GUEST_ADDRESS" dev "$iface" || fatal "cannot address $iface"
    ip link set "$iface" up || fatal "cannot bring up $iface"
    mkdir -p /forward
    for port in $JOB_HOST_PORTS; do
        printf '#!/bin/sh\nexec nc %s %s\n' "$JOB_HOST_ALIAS" "$port" > "/forward/$port"
        chmod 755 "/forward/$port"
        # -ll: keep listening, one forked "nc $JOB_HOST_ALIAS <port>" per connection
        nc -ll -p "$port" -e "/forward/$port" < /dev/null > /dev/null 2>&1 &
    done
    for port in $JOB_HOST_PORTS; do
        hex=$(printf '%04X' "$port")
        tries=0
        # listening (state 0A) on :<port>, over IPv4 or (v4-mapped) IPv6
        until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null \
                | grep -q ":$hex [0-9A-F]*:0000 0A"; do
            tries=$((tries + 1))
            [ "$tries" -lt 200 ] || fatal "forwarder for port $port is not listening"
            sleep 0.1
        done
    done
    mark "stage network-up iface=$iface ports=$JOB_HOST_PORTS"
}
[ -n "$JOB_NETWORK" ] && start_network

if [ -n "$JOB_KO" ]; then
    mark "stage insmod $JOB_KO"
    if ! job_insmod > /outbox/insmod.log 2>&1; then
        dmesg > /outbox/dmesg.txt
        sync
        mark "insmod-failed"
        power_off
    fi
    mark "stage module-loaded"
fi

mark "stage command-start uptime=$(uptime_s)"
if [ -n "$JOB_INTERACTIVE" ]; then
    job_run
    rc=$?
else
    job_run > /outbox/output.log 2>&1 < /dev/null
    rc=$?
fi
mark "stage command-done uptime=$(uptime_s)"
dmesg > /outbox/dmesg.txt
echo "$rc" > /outbox/exit-code
sync
mark "exit $rc"
power_off
