#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# selftest.sh KO: checks mock-accel.ko against kmod/ABI.md in a guest
# (root, a throwaway kernel).  Loads KO with default parameters unless
# mock_accel is already loaded that way, and unloads/reloads it on the way.
# Build the helpers first: make -C kmod/tests.  Prints PASS/FAIL lines and
# exits non-zero on any FAIL.
KO=${1:?usage: selftest.sh path/to/mock-accel.ko}
T=$(cd "$(dirname "$0")" && pwd)
PATH=$T:$PATH
C=/sys/class/mock-accel
B=/sys/bus/mock-accel
FAILS=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
wr() { f=$1; v=$2; exp=$3; out=$(sysfs-write "$f" "$v")
  if [ "$exp" = ok ]; then
    [ "$out" = ok ] && pass "write '$v' > $f" || fail "write '$v' > $f: $out"
  else
    echo "$out" | grep -qi "$exp" && pass "write '$v' > $f -> $exp" || fail "write '$v' > $f expected $exp got $out"
  fi; }
eq() { got=$(cat "$1" 2>&1); [ "$got" = "$2" ] && pass "$1 = $2" || fail "$1 = '$got' expected '$2'"; }
rd_err() { out=$(cat "$1" 2>&1); echo "$out" | grep -q "$2" && pass "read $1 -> $2" || fail "read $1 expected $2 got '$out'"; }
exists() { [ -e "$1" ] && pass "exists $1" || fail "missing $1"; }
absent() { [ -e "$1" ] && fail "present $1" || pass "absent $1"; }
has() { echo "$1" | grep -q "$2" && pass "$3" || fail "$3: '$2' not in output"; }

[ -d $C ] || insmod "$KO" || { echo "FAIL insmod"; exit 1; }
WL=$(cat $C/mock0/wordlist_loaded)

echo "--- default devices"
for d in 0 1 2 3; do exists $C/mock$d; exists /dev/mock$d; done
# without uuid_seed the seed is the machine's (DMI) or random: read back, never 0; the UUID
# ends in 0x8000 | seed bits 61..48 and seed bits 47..0 (TAIL)
S=$(cat /sys/module/mock_accel/parameters/uuid_seed)
[ -n "$S" ] && [ "$S" != 0 ] && pass "uuid_seed in use: $S" || fail "uuid_seed reads '$S'"
TAIL=$(cut -d- -f4- $C/mock0/uuid); TAILX=$(echo "$TAIL" | tr -d -)
eq $C/mock0/uuid "4d4f434b-0000-4000-$TAIL"
eq $C/mock1/uuid "4d4f434b-0001-4000-$TAIL"
eq $C/mock0/numa_node 0; eq $C/mock1/numa_node 1; eq $C/mock2/numa_node 0; eq $C/mock3/numa_node 1
eq $C/mock1/pci_address acc1:01:00.0; eq $C/mock1/pcie_root pciacc1:00
eq $C/mock0/memory_size 17179869184; eq $C/mock0/capabilities 0x00000003
eq $C/mock0/status 0x00000001; eq $C/mock0/fw_version 1.0.0; eq $C/mock0/revision 1
eq $C/mock0/device_type pf; eq $C/mock0/sriov_totalvfs 4; eq $C/mock0/sriov_numvfs 0
eq $C/mock0/passphrase_count 6; eq $C/mock0/health ok; absent $C/mock0/physfn
[ "$(stat -c %a /dev/mock0)" = 600 ] && pass "/dev/mock0 mode 600" || fail "/dev/mock0 mode"

echo "--- status"
wr $C/mock0/status 0x2 ok; eq $C/mock0/status 0x00000003
wr $C/mock0/status 0 ok; eq $C/mock0/status 0x00000001
wr $C/mock0/status 7 ok; eq $C/mock0/status 0x00000003
wr $C/mock0/status '2\n' ok; eq $C/mock0/status 0x00000003
for v in 0x8 0xa abc '2 ' 0x100000002 -2; do wr $C/mock0/status "$v" "Invalid argument"; done
eq $C/mock0/status 0x00000003
wr $C/mock0/status 0 ok

echo "--- fault"
wr $C/mock1/inject_fault 1 ok; eq $C/mock1/health failed; eq $C/mock1/status 0x00000005
wr $C/mock1/status 2 ok; eq $C/mock1/status 0x00000007
for v in 2 x; do wr $C/mock1/inject_fault $v "Invalid argument"; done
if [ "$WL" = 1 ]; then
  rd_err $C/mock1/passphrase "Input/output error"
  io=$(mock-accel-ioctl /dev/mock1)
  has "$io" "PASSPHRASE(0) err=Input/output error" "ioctl passphrase on failed device -> EIO"
  has "$io" "health=1" "info health failed"
  echo "$io" | grep -q "Sample Passphrase" && fail "read() of failed device has a sample" || pass "read() of failed device has no sample"
fi
wr $C/mock1/inject_fault 0 ok; eq $C/mock1/health ok; eq $C/mock1/status 0x00000003
wr $C/mock1/status 0 ok

echo "--- passphrase"
for v in 0 13 3x; do wr $C/mock2/passphrase_count $v "Invalid argument"; done
wr $C/mock2/passphrase_count 3 ok; eq $C/mock2/passphrase_count 3
wr $C/mock2/load_wordlist 2 "Invalid argument"; wr $C/mock2/load_wordlist 0 "Invalid argument"
io=$(mock-accel-ioctl /dev/mock0)
has "$io" "sizes 257 184" "uapi struct sizes"
has "$io" "STATUS ok 0x00000001" "ioctl STATUS"
has "$io" "PASSPHRASE(13) err=Invalid argument" "ioctl PASSPHRASE 13 -> EINVAL"
has "$io" "PASSPHRASE(255) err=Invalid argument" "ioctl PASSPHRASE 255 -> EINVAL"
has "$io" "EFAULT-STATUS err=Bad address" "ioctl STATUS bad pointer"
has "$io" "EFAULT-PP err=Bad address" "ioctl PASSPHRASE bad pointer"
has "$io" "EFAULT-INFO err=Bad address" "ioctl INFO bad pointer"
has "$io" "UNKNOWN err=Inappropriate ioctl" "unknown ioctl -> ENOTTY"
has "$io" "UNKNOWN2 err=Inappropriate ioctl" "foreign ioctl -> ENOTTY"
has "$io" "INFO ok name=mock0 physfn= pci=acc0:00:00.0 root=pciacc0:00 mem=17179869184 node=0 caps=0x3 status=0x1 fw=0x10000 rev=1" "ioctl INFO"
has "$io" "INFO uuid=4d4f434b00004000$TAILX" "ioctl INFO uuid"
has "$io" "Name: mock0" "read() name"
if [ "$WL" = 1 ]; then
  n=$(cat $C/mock2/passphrase | tr '-' '\n' | wc -l); [ "$n" = 3 ] && pass "3 words" || fail "words $n"
  has "$io" "PASSPHRASE(12) ok" "ioctl PASSPHRASE 12"
  has "$io" "Sample Passphrase (6 words): " "read() sample"
  wr $C/mock2/load_wordlist 1 ok
else
  eq $C/mock0/wordlist_size 0
  rd_err $C/mock0/passphrase "No such file or directory"
  has "$io" "PASSPHRASE(0) err=No such file or directory" "ioctl PASSPHRASE without wordlist"
  has "$io" "Wordlist: not loaded" "read() without wordlist"
  wr $C/mock0/load_wordlist 1 "No such file or directory"
  wr $C/mock1/inject_fault 1 ok; rd_err $C/mock1/passphrase "No such file or directory"; wr $C/mock1/inject_fault 0 ok
fi

echo "--- sriov"
for v in 5 abc -1; do wr $C/mock0/sriov_numvfs $v "Invalid argument"; done
wr $C/mock0/sriov_numvfs 4 ok; eq $C/mock0/sriov_numvfs 4
for v in 0 1 2 3; do exists $C/mock0-vf$v; exists /dev/mock0-vf$v; done
V=$C/mock0-vf0
eq $V/device_type vf; eq $V/physfn mock0; eq $V/uuid "4d4f434b-0000-4001-$TAIL"
eq $V/pci_address acc0:00:00.1; eq $V/pcie_root pciacc0:00; eq $V/memory_size 4294967296
eq $V/capabilities 0x00000001; eq $V/numa_node 0; eq $C/mock0-vf3/pci_address acc0:00:00.4
absent $V/sriov_numvfs; absent $V/sriov_totalvfs
has "$(mock-accel-ioctl /dev/mock0-vf2)" "name=mock0-vf2 physfn=mock0 pci=acc0:00:00.3" "ioctl INFO of a VF"
wr $C/mock0/sriov_numvfs 2 "busy"; wr $C/mock0/sriov_numvfs 4 ok
wr $C/mock1/sriov_numvfs 1 ok; eq $C/mock1-vf0/uuid "4d4f434b-0001-4001-$TAIL"
eq $C/mock1-vf0/pci_address acc1:01:00.1; eq $C/mock1-vf0/numa_node 1
exec 3</dev/mock0-vf1
wr $C/mock0/sriov_numvfs 0 "busy"; exists $C/mock0-vf1
exec 3<&-
wr $C/mock0/sriov_numvfs 0 ok; wr $C/mock1/sriov_numvfs 0 ok
for v in 0 1 2 3; do absent $C/mock0-vf$v; absent /dev/mock0-vf$v; done

echo "--- new_device / del_device"
wr $B/new_device 4 ok; eq $C/mock4/numa_node 0; eq $C/mock4/pci_address acc0:04:00.0
wr $B/new_device '5 1 1024 2\n' ok; eq $C/mock5/numa_node 1; eq $C/mock5/memory_size 1024
eq $C/mock5/sriov_totalvfs 2; wr $C/mock5/sriov_numvfs 2 ok; eq $C/mock5-vf1/memory_size 512
wr $B/new_device 4 "File exists"
for v in 256 abc '6 0 1 2 3' '6 64' '6 0 1 65' '6 x'; do wr $B/new_device "$v" "Invalid argument"; done
absent $C/mock6
wr $B/new_device '7 -1' ok; eq $C/mock7/numa_node -1; eq $C/mock7/pci_address acc0:07:00.0
wr $B/new_device '255 3 1024 0' ok; eq $C/mock255/numa_node 3; eq $C/mock255/pci_address acc3:ff:00.0
eq $C/mock255/uuid "4d4f434b-00ff-4000-$TAIL"; wr $C/mock255/sriov_numvfs 1 "Invalid argument"
wr $B/del_device 9 "No such device"; wr $B/del_device abc "Invalid argument"
for i in 4 5 7 255; do wr $B/del_device $i ok; absent $C/mock$i; absent /dev/mock$i; done
absent $C/mock5-vf0

echo "--- removal with open files"
wr $B/new_device 9 ok; wr $C/mock9/sriov_numvfs 2 ok
exec 4</dev/mock9
exec 6</dev/mock9-vf1
wr $B/del_device 9 ok; absent $C/mock9; absent $C/mock9-vf1
for fd in 4 6; do
  io=$(mock-accel-ioctl fd $fd)
  has "$io" "STATUS err=No such device" "fd $fd STATUS after removal -> ENODEV"
  has "$io" "INFO err=No such device" "fd $fd INFO after removal -> ENODEV"
  has "$io" "UNKNOWN err=No such device" "fd $fd any ioctl after removal -> ENODEV"
  has "$io" "READ err=No such device" "fd $fd read after removal -> ENODEV"
done
exec 4<&-
exec 6<&-
wr $B/new_device 9 ok; eq $C/mock9/status 0x00000001; wr $B/del_device 9 ok

echo "--- rmmod"
exec 5</dev/mock0
rmmod mock_accel 2>/dev/null && fail "rmmod with an open fd succeeded" || pass "rmmod refused with an open fd"
exec 5<&-
rmmod mock_accel && pass "rmmod after close" || fail "rmmod after close"
absent $C; absent $B; absent /dev/mock0

echo "--- module parameters"
if insmod "$KO" num_devices=2 num_vfs=2 numa_nodes=1 uuid_seed=0x123456789abcdef0 dev_mode=0666 memory_size=4096 total_vfs=3; then
  eq $C/mock0/uuid 4d4f434b-0000-4000-9234-56789abcdef0; eq $C/mock1-vf1/uuid 4d4f434b-0001-4002-9234-56789abcdef0
  eq $C/mock1/numa_node 0; eq $C/mock1-vf0/memory_size 1365; eq $C/mock0/sriov_numvfs 2
  [ "$(stat -c %a /dev/mock1-vf1)" = 666 ] && pass "dev_mode 0666" || fail "dev_mode"
  rmmod mock_accel && pass "rmmod with VFs" || fail "rmmod with VFs"
else
  fail "insmod with parameters"
fi
for p in numa_nodes=0 numa_nodes=65 total_vfs=65 "total_vfs=2 num_vfs=3" num_devices=257 dev_mode=01000 firmware_name=; do
  # shellcheck disable=SC2086
  if insmod "$KO" $p 2>/dev/null; then fail "insmod $p succeeded"; rmmod mock_accel; else pass "insmod $p refused"; fi
done
insmod "$KO" num_devices=0 && { [ -d $B ] && [ -z "$(ls $C)" ] && pass "num_devices=0" || fail "num_devices=0"; rmmod mock_accel; }
insmod "$KO" || fail "reload"

echo "--- dmesg"
if dmesg | grep -E "WARNING:|BUG:|Oops|general protection|Call Trace" | grep -v "topology_sane" | grep -q .; then
  fail "dmesg has warnings"; dmesg | grep -E -A5 "WARNING:|BUG:|Oops"
else
  pass "dmesg clean"
fi
echo "selftest: $FAILS failure(s)"
[ "$FAILS" = 0 ]
