#!/bin/sh
# Build mock-accel.ko for one kernel inside a distribution's builder image.
#
#   build-kmod.sh FAMILY KERNEL_FULL_VERSION OUT_DIR [SRC_DIR]
#
# FAMILY is the family of the builder image this runs in (fedora, rhel, debian, debian13,
# debian14, ubuntu; debian13 is Debian 13, whose kernels are tagged +deb13 and need its
# compiler; debian14 the same for the +deb14 kernels of unstable). The
# kernel's own family is read from its version string (or from $KMOD_DISTRO when set, for
# custom kernels). When the two differ this stage has nothing to do: it leaves OUT_DIR empty and
# exits 0, so one Containerfile can hold a stage per family and keep the single stage that
# matches. `build-kmod.sh detect VERSION` only prints the family of VERSION.
set -eu

kernel_family() {
	case "$1" in
	*.fc[0-9]*) echo fedora ;;
	*.el[0-9]*) echo rhel ;;
	*+deb13-*amd64 | *+deb13-*arm64) echo debian13 ;;
	*+deb14-*amd64 | *+deb14-*arm64) echo debian14 ;;
	*-amd64 | *-arm64) echo debian ;; # also -cloud-amd64, -rt-amd64
	*-generic | *-generic-64k | *-lowlatency | *-aws | *-azure | *-gcp | *-gke | *-oracle | \
		*-kvm | *-ibm | *-nvidia | *-raspi) echo ubuntu ;;
	*) echo unknown ;;
	esac
}

if [ "${1:-}" = detect ]; then
	kernel_family "${2:?usage: build-kmod.sh detect KERNEL_FULL_VERSION}"
	exit 0
fi

family=${1:?usage: build-kmod.sh FAMILY KERNEL_FULL_VERSION OUT_DIR [SRC_DIR]}
kver=${2:?KERNEL_FULL_VERSION is empty: KMM passes it, docker build needs --build-arg}
out=${3:?OUT_DIR missing}
src=${4:-/usr/src/mock-accel}
want=${KMOD_DISTRO:-auto}
[ "$want" = auto ] && want=$(kernel_family "$kver")
mkdir -p "$out"

if [ "$want" = unknown ]; then
	[ "$family" = fedora ] || exit 0 # say it once, in the first stage
	echo "build-kmod: cannot tell the distribution of kernel $kver (Fedora *.fcNN, RHEL-like" \
		"*.elN, Debian *-amd64/*-arm64, Ubuntu *-generic/...): pass --build-arg" \
		"KMOD_DISTRO=fedora|rhel|debian|debian13|debian14|ubuntu" >&2
	exit 1
fi
[ "$want" = "$family" ] || exit 0

# The builder image must really be of that family (it may be overridden by a build arg).
# shellcheck disable=SC1091 # the builder image's, not ours
id=$(. /etc/os-release && echo "${ID:-} ${ID_LIKE:-}")
case "$family:$id" in
fedora:*fedora*) ;;
rhel:*rhel* | rhel:*centos* | rhel:*fedora*) ;;
debian:*debian* | debian13:*debian* | debian14:*debian*) ;;
ubuntu:*ubuntu*) ;;
*)
	echo "build-kmod: kernel $kver needs a $family builder image, this one is '$id'" >&2
	exit 1
	;;
esac

case "$family" in
fedora | rhel) kdir=/usr/src/kernels/$kver ;;
*) kdir=/lib/modules/$kver/build ;;
esac

if [ ! -e "$kdir/Makefile" ]; then
	echo "build-kmod: installing $family headers for $kver"
	case "$family" in
	fedora | rhel)
		dnf -y install --setopt=install_weak_deps=False "kernel-devel-$kver" gcc make \
			elfutils-libelf-devel kmod ||
			{ echo "build-kmod: kernel-devel-$kver is not in this builder's repositories" >&2; exit 1; }
		dnf clean all
		;;
	debian | debian13 | debian14 | ubuntu)
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q
		apt-get install -y -q --no-install-recommends "linux-headers-$kver" gcc make kmod ||
			{ echo "build-kmod: linux-headers-$kver is not in this builder's repositories" >&2; exit 1; }
		rm -rf /var/lib/apt/lists/*
		;;
	esac
fi

echo "build-kmod: building $src against $kdir"
make -C "$src" KDIR="$kdir" modules
vermagic=$(modinfo -F vermagic "$src/mock-accel.ko")
case "$vermagic" in
"$kver "*) ;;
*)
	echo "build-kmod: built for '$vermagic', not $kver" >&2
	exit 1
	;;
esac
cp "$src/mock-accel.ko" "$out/"
# What built it, recorded beside the module: the builder, and every package installed in it
# with its exact version (headers, compiler, make, kmod, and what they pulled in).
{
	echo "# mock-accel.ko for $kver: built by build-kmod.sh in a $family builder"
	echo "vermagic=$vermagic"
	echo "srcversion=$(modinfo -F srcversion "$src/mock-accel.ko")"
	echo "sha256=$(sha256sum "$src/mock-accel.ko" | cut -d' ' -f1)"
	# shellcheck disable=SC1091 # the builder image's, not ours
	echo "builder=$(. /etc/os-release && echo "${PRETTY_NAME:-$ID}")"
	echo "# builder packages"
	case "$family" in
	fedora | rhel) rpm -qa --qf '%{NAME}=%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\n' | sort ;;
	*) dpkg-query -W -f '${Package}=${Version}\n' | sort ;;
	esac
} >"$out/mock-accel.build-manifest"
echo "build-kmod: $out/mock-accel.ko ($vermagic), packages in $out/mock-accel.build-manifest"
