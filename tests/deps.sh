#!/bin/sh
# deps.sh: install the Debian 12 packages that building and testing relocfs
# need, and only those that are missing.  Safe to run again and again: it
# does nothing (and needs no network) when everything is installed.
# As root it installs with apt-get; otherwise it names what is missing and
# exits 1.
PACKAGES="build-essential pkg-config libfuse3-dev fuse3 libxxhash-dev libcmocka-dev liburing-dev
	libjansson-dev fio qemu-utils qemu-system-x86 busybox-static cpio attr xfsprogs
	util-linux kmod
	jq e2fsprogs gzip clang valgrind socat
	libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
	libsystemd-dev systemd man-db bash-completion dpkg-dev debhelper lintian
	librbd-dev librados-dev ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common
	qemu-block-extra openssh-server openssh-client sshfs iproute2 libcap2-bin"
# libcap2-bin: setcap and getcap (file capabilities, tests/mirror/ownership);
# libsystemd-dev: sd_notify; systemd: systemd-analyze verify of the unit;
# man-db, bash-completion, dpkg-dev, debhelper, lintian: tests/pkg (man
# pages, completion, the Debian package);
# liburing-dev: FUSE over io_uring (fs/uring.c); librbd-dev, librados-dev:
# the RBD destination's headers (target/rbdlib.c loads the libraries); ceph-*: the throw-away cluster of
# tests/ceph; qemu-block-extra: QEMU's rbd driver; jq: tests/reloc read
# status --json; e2fsprogs: loop filesystems for ENOSPC
# tests; clang: make tsan and the fuzzer; valgrind: memcheck of the unit tests; socat: QMP commands in tests/vm/daemon_death.sh; libvirt: tests/vm/libvirt_hook.sh
# openssh-server, openssh-client, sshfs: the "other host" of tests/host/ (a private
# sshd on a loopback port, its directory mounted with sshfs); iproute2: ss

missing=
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
	case $status in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

[ -n "$missing" ] || exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing (run tests/deps.sh as root)" >&2
	exit 1
fi

echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || exit 1
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing || exit 1
