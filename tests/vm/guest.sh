#!/bin/bash
# guest.sh: a real Linux guest for tests, booted by QEMU from a busybox
# initramfs.  Source it from a test (bash) for the functions below; run it
# (as run_integration.sh does) and it checks itself: it boots a guest without
# disks and expects the guest script's output back on the console.
#
# The kernel is Debian's own (the linux-image-6.1.0-*-amd64 that the meta
# package linux-image-amd64 names), fetched once with apt-get download and
# kept with the six virtio modules under $RELOCFS_VM_CACHE (default
# /var/cache/relocfs-test), outside the repository.  The initramfs holds
# busybox-static, those modules (decompressed if Debian ships them as .ko.xz
# or .ko.zst), an /init that loads them and runs the guest script, and the
# guest script itself.
#
#   guest_prepare                 kernel and modules in the cache; sets
#                                 GUEST_KERNEL, GUEST_MODDIR.  Returns 77 (the
#                                 caller skips) when QEMU or the kernel cannot be had.
#   guest_prepare_or_skip         the same in a test (tests/lib.sh): the test is
#                                 skipped when QEMU or the kernel cannot be had
#   guest_initrd SCRIPT OUT       build an initramfs running SCRIPT (a file)
#   guest_gens_initrd DIR NBLK DISKS ZEROED CTL  the same for the tests' guest
#                                 script of generations (below)
#   guest_start LOG QMP DRIVE...  boot in the background; console to LOG, QMP on
#                                 the UNIX socket QMP ("" for none), each DRIVE a
#                                 -drive value (more QEMU arguments in the
#                                 array GUEST_QEMU_ARGS); sets GUEST_PID
#   guest_wait_line LOG ERE SECS  until a console line matches ERE (a hang guard)
#   guest_wait SECS               until QEMU exits; its status in GUEST_RC
#   guest_kill                    end QEMU if it still runs
#
# In the guest: /init mounts proc, sys, devtmpfs, loads virtio_ring, virtio,
# virtio_pci_modern_dev, virtio_pci_legacy_dev, virtio_pci, virtio_blk in that
# order, prints "GUEST: ready", runs the script with sh (or, if the kernel
# command line sets guest_cmd=..., that command instead: the kernel hands
# unknown name=value parameters to /init as environment), prints
# "GUEST: exit STATUS" and powers off.  A kernel panic reboots, and
# -no-reboot turns that into QEMU exiting.

GUEST_CACHE=${RELOCFS_VM_CACHE:-/var/cache/relocfs-test}
GUEST_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
GUEST_KERNEL=
GUEST_MODDIR=
GUEST_PID=
GUEST_RC=
GUEST_APPEND_EXTRA=${GUEST_APPEND_EXTRA:-}
GUEST_QEMU_ARGS=()
# TCG by default: the project's machines have no usable KVM (a /dev/kvm that
# exists here made the guest crawl); RELOCFS_VM_ACCEL=kvm where it works

guest_log() { printf 'guest.sh: %s\n' "$*" >&2; }

# the package that linux-image-amd64 depends on, e.g. linux-image-6.1.0-56-amd64
guest_kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

# guest_fetch_kernel PKG DIR: apt-get download PKG, unpack, keep what we need in DIR
guest_fetch_kernel() {
	local pkg=$1 dir=$2 work deb m f
	work=$(mktemp -d "${TMPDIR:-/tmp}/relocfs-kernel.XXXXXX") || return 1
	# (apt warns that it downloads unsandboxed into a root-only directory: harmless)
	if ! (cd "$work" && apt-get download -q "$pkg" >"$work/download.log" 2>&1); then
		guest_log "apt-get download $pkg failed: $(tail -n 1 "$work/download.log")"
		rm -rf "$work"
		return 1
	fi
	deb=$(ls "$work"/*.deb 2>/dev/null | head -n 1)
	if [ -z "$deb" ] || ! dpkg -x "$deb" "$work/x"; then
		guest_log "cannot unpack '$deb'"
		rm -rf "$work"
		return 1
	fi
	mkdir -p "$dir.tmp/modules"
	cp "$work"/x/boot/vmlinuz-* "$dir.tmp/vmlinuz" || { rm -rf "$work" "$dir.tmp"; return 1; }
	for m in $GUEST_MODULES; do
		f=$(find "$work/x/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" |
			head -n 1)
		case $f in
		*.ko) cp "$f" "$dir.tmp/modules/$m.ko" ;;
		*.ko.xz) xz -dc "$f" >"$dir.tmp/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$dir.tmp/modules/$m.ko" ;;
		*) guest_log "module $m is not in $pkg"; rm -rf "$work" "$dir.tmp"; return 1 ;;
		esac || { rm -rf "$work" "$dir.tmp"; return 1; }
	done
	echo "$pkg" >"$dir.tmp/package"
	rm -rf "$work"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

# guest_fetch_locked PKG DIR: fetch unless there, one fetch at a time
guest_fetch_locked() {
	mkdir -p "$GUEST_CACHE" || return 1
	(flock 9 && { [ -f "$2/package" ] || guest_fetch_kernel "$1" "$2"; }) 9>"$GUEST_CACHE/.lock"
}

guest_prepare() {
	local pkg dir c
	command -v qemu-system-x86_64 >/dev/null 2>&1 || {
		guest_log "qemu-system-x86_64 is not installed"
		return 77
	}
	for c in busybox cpio gzip flock; do
		command -v $c >/dev/null 2>&1 || { guest_log "'$c' is not installed (tests/deps.sh)"; return 1; }
	done
	pkg=$(guest_kernel_package)
	if [ -z "$pkg" ] && [ "$(id -u)" = 0 ] && [ -z "$(guest_cached_kernels)" ]; then
		# a fresh machine may have no package lists yet
		apt-get update -q >/dev/null 2>&1 || true
		pkg=$(guest_kernel_package)
	fi
	dir=
	[ -z "$pkg" ] || dir=$GUEST_CACHE/$pkg
	if [ -n "$dir" ] && [ ! -f "$dir/package" ]; then
		guest_log "fetching $pkg into $GUEST_CACHE (once)"
		if ! guest_fetch_locked "$pkg" "$dir" && [ "$(id -u)" = 0 ]; then
			# stale package lists may name a version the archive no longer has
			guest_log "updating the package lists and trying again"
			apt-get update -q >/dev/null 2>&1 || true
			pkg=$(guest_kernel_package)
			dir=
			[ -z "$pkg" ] || dir=$GUEST_CACHE/$pkg
			[ -z "$dir" ] || guest_fetch_locked "$pkg" "$dir" || dir=
		fi
	fi
	if [ -z "$dir" ] || [ ! -f "$dir/package" ]; then
		# no package lists, or no download: any kernel already cached will do
		dir=$(guest_cached_kernels | tail -n 1)
		[ -n "$dir" ] || { guest_log "no kernel: apt names none or its download failed"; return 77; }
		guest_log "using the cached $(cat "$dir/package")"
	fi
	GUEST_KERNEL=$dir/vmlinuz
	GUEST_MODDIR=$dir/modules
}

guest_cached_kernels() {
	local d
	for d in "$GUEST_CACHE"/linux-image-*; do
		[ -f "$d/package" ] && echo "$d"
	done
	return 0
}

# guest_initrd SCRIPT OUT: an initramfs (gzip'd newc cpio) that runs SCRIPT
guest_initrd() {
	local script=$1 out=$2 root m
	root=$(mktemp -d "${TMPDIR:-/tmp}/relocfs-initrd.XXXXXX") || return 1
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt,lib/modules}
	cp "$(command -v busybox)" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	for m in $GUEST_MODULES; do
		cp "$GUEST_MODDIR/$m.ko" "$root/lib/modules/"
	done
	cp "$script" "$root/guest-script"
	cat >"$root/init" <<-'EOF'
	#!/bin/sh
	/bin/busybox --install -s /bin
	export PATH=/bin
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	mount -t tmpfs tmp /tmp
	echo 1 >/proc/sys/kernel/printk
	for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
		insmod /lib/modules/$m.ko || echo "GUEST: insmod $m failed"
	done
	# disks appear asynchronously after virtio_blk probes (virtio device id 2)
	want=$(cat /sys/bus/virtio/devices/*/device 2>/dev/null | grep -c 0x0002)
	n=0
	while [ "$(ls /sys/block | grep -c '^vd')" -lt "$want" ] && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	echo "GUEST: ready disks=$(ls /sys/block | grep '^vd' | tr '\n' ' ')uptime=$(cut -d' ' -f1 /proc/uptime)"
	if [ -n "$guest_cmd" ]; then
		sh -c "$guest_cmd"
	else
		sh /guest-script
	fi
	echo "GUEST: exit $?"
	sync
	poweroff -f
	EOF
	chmod 755 "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	local rc=$?
	rm -rf "$root"
	return $rc
}

guest_prepare_or_skip() {
	local rc=0
	guest_prepare || rc=$?
	[ $rc != 77 ] || skip "qemu-system-x86_64 or Debian's kernel cannot be had"
	[ $rc = 0 ] || fail "guest_prepare failed"
}

# guest_start LOG QMP DRIVE...
guest_start() {
	local log=$1 qmp=$2 d
	shift 2
	# 256 MiB + 8 KiB, not -m 256: QEMU before 9.0 loses TCG writes to a RAM
	# block whose start and size are multiples of 64 pages (256 KiB) during
	# a migration (its fast path of cpu_physical_memory_sync_dirty_bitmap
	# clears dirty bits without resetting the TCG TLB's dirty tracking, fixed
	# by 03bfc2188f "physmem: Fix migration dirty bitmap coherency with TCG
	# memory access"), and the guest crashes at the destination; a size off
	# that multiple takes the slow path, which resets it (docs/testing.md)
	local args=(-M q35 -m 262152k -smp 1 -nographic -no-reboot
		-accel "${RELOCFS_VM_ACCEL:-tcg}"
		-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD"
		-append "console=ttyS0 panic=-1 loglevel=4 $GUEST_APPEND_EXTRA")
	[ -z "$qmp" ] || args+=(-qmp "unix:$qmp,server=on,wait=off")
	for d in "$@"; do
		args+=(-drive "$d")
	done
	args+=("${GUEST_QEMU_ARGS[@]}")
	qemu-system-x86_64 "${args[@]}" </dev/null >"$log" 2>&1 &
	GUEST_PID=$!
	GUEST_START_S=$(date +%s.%N)
}

# guest_wait_line LOG ERE SECS: 0 when a line matches, 1 if QEMU ended or SECS passed
guest_wait_line() {
	local log=$1 ere=$2 limit=$(($3 * 10)) i=0
	while ! grep -Eq -- "$ere" "$log" 2>/dev/null; do
		[ -n "$GUEST_PID" ] && kill -0 "$GUEST_PID" 2>/dev/null || {
			grep -Eq -- "$ere" "$log" 2>/dev/null
			return
		}
		i=$((i + 1))
		[ $i -lt $limit ] || return 1
		sleep 0.1
	done
}

# guest_wait SECS: wait for QEMU to exit (1 if it still runs after SECS)
guest_wait() {
	local limit=$(($1 * 10)) i=0
	[ -n "$GUEST_PID" ] || return 0
	while kill -0 "$GUEST_PID" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt $limit ] || return 1
		sleep 0.1
	done
	GUEST_RC=0
	wait "$GUEST_PID" || GUEST_RC=$?
	GUEST_PID=
}

guest_kill() {
	[ -n "$GUEST_PID" ] || return 0
	kill "$GUEST_PID" 2>/dev/null
	guest_wait 10 || { kill -9 "$GUEST_PID" 2>/dev/null; wait "$GUEST_PID" 2>/dev/null; }
	GUEST_PID=
	return 0
}

# ---------------------------------------------------------------------------
# block patterns shared by guest scripts and host checks
#
# A pattern block is 4096 bytes: "RELOCFS dev=vda blk=00000012 gen=00000034",
# spaces, "\n".  Its header names the device, its own index and the
# generation that wrote it, so a block read from the wrong place or a stale
# generation shows in its first line.  The guest writes them with busybox
# printf (no process per block), the host builds the same bytes with awk.

# shell text for guest scripts: defines blocks DEV GEN FIRST COUNT
GUEST_PATTERN_SH='
blocks() {
	i=$3
	end=$(($3 + $4))
	while [ $i -lt $end ]; do
		printf "RELOCFS dev=%s blk=%08d gen=%08d%4054s\n" "$1" $i $2 ""
		i=$((i + 1))
	done
}
'

# guest_gens_initrd DIR NBLK DISKS ZEROED CTL: the tests' guest script of
# generations, in an initramfs at DIR/initrd.gz (GUEST_INITRD is set).
# Generation g writes, to each disk of DISKS (in that order) and flushed,
# region A (blocks 0-63) and window (g-1) % 64 of region B (64 windows of
# 16 blocks from block 64), then "GEN g flushed"; until block 0 of disk CTL
# reads "STOP".  Then it reads every disk back with O_DIRECT after dropping
# its caches: regions A and B as the last generations wrote them, the host's
# fill (pattern "hst", generation 0) in blocks 1088-1151 and in the last 16
# of NBLK blocks, except on the disks of ZEROED, whose last 16 blocks must
# be zeros (a qcow2 image filled only in its lower half), and no "I/O error"
# in the kernel's log; it prints "VERIFY PASS gen=G" or "VERIFY FAIL: why".
# expected_image gives a disk's bytes after generation G on the host.
guest_gens_initrd() {
	local dir=$1 nblk=$2 disks=$3 zeroed=$4 ctl=$5
	{
		printf '%s\n' "$GUEST_PATTERN_SH"
		printf 'NBLK=%s\nDISKS="%s"\nZEROED="%s"\nCTL=%s\n' "$nblk" "$disks" "$zeroed" "$ctl"
		cat <<'GUEST'
fail() { echo "VERIFY FAIL: $*"; exit 1; }
# gen_of W G: the last generation <= G that wrote window W of region B, 0 if none
gen_of() { if [ $1 -le $(($2 - 1)) ]; then echo $(($2 - (($2 - 1 - $1) % 64))); else echo 0; fi; }
write_gen() {
	blocks $1 $2 0 64 >/tmp/a
	dd if=/tmp/a of=/dev/$1 bs=4096 oflag=direct conv=fsync,notrunc 2>/tmp/dd.err || return 1
	first=$((64 + (($2 - 1) % 64) * 16))
	blocks $1 $2 $first 16 >/tmp/b
	dd if=/tmp/b of=/dev/$1 bs=4096 seek=$first oflag=direct conv=fsync,notrunc 2>/tmp/dd.err
}
for d in $DISKS $CTL; do [ -b /dev/$d ] || fail "no /dev/$d"; done
g=0
while :; do
	g=$((g + 1))
	for d in $DISKS; do
		write_gen $d $g || fail "writing generation $g to $d: $(cat /tmp/dd.err)"
	done
	echo "GEN $g flushed"
	dd if=/dev/$CTL bs=512 count=1 iflag=direct 2>/dev/null | grep -q STOP && break
	[ $g -lt 5000 ] || fail "never told to stop"
done
echo 3 >/proc/sys/vm/drop_caches
for d in $DISKS; do
	blocks $d $g 0 64 >/tmp/exp
	w=0
	while [ $w -lt 64 ]; do
		wg=$(gen_of $w $g)
		if [ $wg = 0 ]; then blocks hst 0 $((64 + w * 16)) 16; else blocks $d $wg $((64 + w * 16)) 16; fi
		w=$((w + 1))
	done >>/tmp/exp
	blocks hst 0 1088 64 >>/tmp/exp
	dd if=/dev/$d bs=4096 count=1152 iflag=direct 2>/dev/null | cmp - /tmp/exp >/tmp/cmp.out 2>&1 ||
		fail "$d after generation $g: $(cat /tmp/cmp.out)"
done
blocks hst 0 $((NBLK - 16)) 16 >/tmp/exp
for d in $DISKS; do
	case " $ZEROED " in
	*" $d "*)
		[ "$(dd if=/dev/$d bs=4096 skip=$((NBLK - 16)) iflag=direct 2>/dev/null | tr -d '\000' | wc -c)" = 0 ] ||
			fail "the last blocks of $d are not zeros" ;;
	*)
		dd if=/dev/$d bs=4096 skip=$((NBLK - 16)) iflag=direct 2>/dev/null | cmp -s - /tmp/exp ||
			fail "the last blocks of $d" ;;
	esac
done
dmesg | grep -qi 'I/O error' && fail "the kernel logged: $(dmesg | grep -i 'I/O error' | head -n 1)"
echo "VERIFY PASS gen=$g: $DISKS read back (O_DIRECT) exactly as written, no I/O error logged"
GUEST
	} >"$dir/script.sh"
	GUEST_INITRD=$dir/initrd.gz
	guest_initrd "$dir/script.sh" "$GUEST_INITRD"
}

# pattern_blocks DEV GEN FIRST COUNT: the same bytes on the host
pattern_blocks() {
	awk -v d="$1" -v g="$2" -v f="$3" -v n="$4" \
		'BEGIN { for (i = f; i < f + n; i++) printf "RELOCFS dev=%s blk=%08d gen=%08d%4054s\n", d, i, g, "" }'
}

# expected_image DEV G FILLBLK OUT: what disk DEV of the tests' guest script
# holds after generation G (tests/vm/e2e_qmp.sh, demo/demo_vm.sh,
# tests/host/, tests/ceph/rbd_guest.sh): regions A (64 blocks, rewritten
# each generation) and B (64 windows of 16 blocks, one per generation), the
# host's fill below block FILLBLK where the guest never wrote, zeros above,
# the file SIZE_MB MiB long
expected_image() {
	awk -v d="$1" -v G="$2" -v n="$3" 'BEGIN {
		for (i = 0; i < n; i++) {
			dv = "hst"; g = 0
			if (i < 64) {
				dv = d; g = G
			} else if (i < 64 + 64 * 16) {
				w = int((i - 64) / 16)
				if (w <= G - 1) { dv = d; g = G - ((G - 1 - w) % 64) }
			}
			printf "RELOCFS dev=%s blk=%08d gen=%08d%4054s\n", dv, i, g, ""
		}
	}' >"$4"
	truncate -s "${SIZE_MB}M" "$4"
}

# ---------------------------------------------------------------------------
# run directly: boot a guest without disks and check its script ran

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	work=$(mktemp -d "${TMPDIR:-/tmp}/relocfs-guest.XXXXXX")
	trap 'guest_kill; rm -rf "$work"' EXIT
	rc=0
	guest_prepare || rc=$?
	if [ $rc = 77 ]; then
		echo "SKIP: guest: no QEMU or no kernel"
		exit 77
	fi
	[ $rc = 0 ] || { echo "FAIL: guest: guest_prepare failed"; exit 1; }
	echo "--- kernel $(cat "$(dirname "$GUEST_KERNEL")/package")"
	printf 'echo "hello from $(uname -r), $(ls /lib/modules | wc -l) modules"\nexit 3\n' >"$work/script"
	GUEST_INITRD=$work/initrd.gz
	guest_initrd "$work/script" "$GUEST_INITRD" || { echo "FAIL: guest: cannot build the initramfs"; exit 1; }
	guest_start "$work/console.log" ""
	guest_wait 120 || { echo "FAIL: guest: still running after 120 s"; tail -n 30 "$work/console.log"; exit 1; }
	end=$(date +%s.%N)
	tail -n 5 "$work/console.log" | sed 's/^/    | /'
	grep -q "^hello from .*, 6 modules" "$work/console.log" ||
		{ echo "FAIL: guest: the guest script's line is missing"; cat "$work/console.log"; exit 1; }
	grep -q "^GUEST: exit 3" "$work/console.log" ||
		{ echo "FAIL: guest: exit status of the script not reported"; exit 1; }
	[ "$GUEST_RC" = 0 ] || { echo "FAIL: guest: qemu exited with $GUEST_RC"; exit 1; }
	echo "ok: guest: booted, ran its script and powered off in $(awk -v a="$GUEST_START_S" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
	exit 0
fi
