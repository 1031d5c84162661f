#!/bin/sh
# make demo: relocate a small real guest's disks live (demo/demo_vm.sh) where
# QEMU and a guest kernel can be had; otherwise, or with DEMO_VM=0, the
# built-in example below: relocate a demo VM directory live, under a writer,
# and show what happened.  Everything lives under $DEMO_DIR (default
# /var/tmp/relocfs-demo), which is removed first.
#
#   vms/          the VM's disk directory: relocfs is mounted over it
#   new-storage/  where the files move to
set -eu

B=${BUILD:-build}
DEMO_DIR=${DEMO_DIR:-/var/tmp/relocfs-demo}
export RELOCFS_RUNDIR="$DEMO_DIR/run"
VMS="$DEMO_DIR/vms"
NEW="$DEMO_DIR/new-storage"
IMG_MB=${DEMO_IMG_MB:-512}
WRITER_PID=

say() { printf '\n== %s\n' "$*"; }
cleanup() {
	[ -n "$WRITER_PID" ] && kill "$WRITER_PID" 2>/dev/null || true
	[ -n "$WRITER_PID" ] && wait "$WRITER_PID" 2>/dev/null || true
	if grep -q " $VMS .* fuse.relocfs " /proc/self/mountinfo 2>/dev/null; then
		fusermount3 -u "$VMS" 2>/dev/null || fusermount3 -uz "$VMS" 2>/dev/null || true
	fi
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it mounts a FUSE filesystem and drops caches)" >&2
	exit 1
fi

# a real guest first; exit 77 from demo_vm.sh: none here (it said why in one line)
if [ "${DEMO_VM:-1}" != 0 ] && command -v qemu-system-x86_64 >/dev/null 2>&1 &&
   command -v bash >/dev/null 2>&1; then
	rc=0
	bash "$(dirname "$0")/demo_vm.sh" || rc=$?
	[ $rc = 77 ] || exit $rc
elif [ "${DEMO_VM:-1}" != 0 ]; then
	echo "demo: no real guest here (qemu-system-x86_64 is not installed); running the built-in example instead"
fi

cleanup
rm -rf "$DEMO_DIR"
mkdir -p "$VMS" "$NEW"

say "a VM directory on the old storage: a ${IMG_MB} MiB sparse disk image, a config file, NVRAM"
truncate -s "${IMG_MB}M" "$VMS/disk0.img"
# data islands with holes between them, like a real image
i=0
while [ $i -lt $((IMG_MB / 4)) ]; do
	dd if=/dev/urandom of="$VMS/disk0.img" bs=1M count=2 seek=$((i * 4)) conv=notrunc status=none
	i=$((i + 1))
done
echo '<domain><name>demo</name></domain>' > "$VMS/demo.xml"
mkdir -p "$VMS/nvram" && head -c 131072 /dev/urandom > "$VMS/nvram/demo_VARS.fd"
ls -ls "$VMS" | sed 's/^/   /'

say "mount relocfs over it (the VM keeps using the same path)"
"$B/relocfs" "$VMS"
findmnt -n -o TARGET,FSTYPE,SOURCE "$VMS" | sed 's/^/   /'

say "a guest-like writer: random 4 KiB writes with fdatasync, through the mount"
if [ -x "$B/tests/relocwriter" ]; then
	"$B/tests/relocwriter" --seed 42 --file "$VMS/disk0.img" --size $((IMG_MB * 1048576)) \
		--model-dir "$DEMO_DIR" --until-file "$DEMO_DIR/stop" --flush-every 8 \
		>"$DEMO_DIR/writer.log" 2>&1 &
	WRITER_PID=$!
	WRITER=relocwriter
else
	(n=0; while [ ! -e "$DEMO_DIR/stop" ]; do
		dd if=/dev/urandom of="$VMS/disk0.img" bs=4k count=1 \
		   seek=$(( $(od -An -N4 -tu4 /dev/urandom) % (IMG_MB * 256) )) conv=notrunc,fdatasync \
		   status=none || exit 1
		n=$((n + 1))
	done; echo "$n writes") >"$DEMO_DIR/writer.log" 2>&1 &
	WRITER_PID=$!
	WRITER=dd
fi
echo "   writer: $WRITER (pid $WRITER_PID)"
sleep 1

say "relocctl migrate: writes go to the delta store, the copier streams the base"
"$B/relocctl" -m "$VMS" migrate --to "$NEW" | sed 's/^/   /'
sleep 1
"$B/relocctl" -m "$VMS" status | sed 's/^/   /'

say "relocctl wait: until every file is ready for cutover"
"$B/relocctl" -m "$VMS" wait --timeout 600 | sed 's/^/   /'

say "relocctl verify: the new storage against the live view (XXH3)"
"$B/relocctl" -m "$VMS" verify | sed 's/^/   /'

say "relocctl cutover: hold I/O, finish, switch to the new storage, release"
"$B/relocctl" -m "$VMS" cutover | sed 's/^/   /'

sleep 1
touch "$DEMO_DIR/stop"
wait "$WRITER_PID" || { echo "demo: the writer failed:"; cat "$DEMO_DIR/writer.log"; exit 1; }
WRITER_PID=
echo "   writer stopped: $(tail -n 1 "$DEMO_DIR/writer.log")"

say "check: the live view equals the new storage, byte for byte"
for f in disk0.img demo.xml nvram/demo_VARS.fd; do
	cmp "$VMS/$f" "$NEW/$f"
	echo "   $f: same ($(stat -c %s "$NEW/$f") bytes, $(du -k "$NEW/$f" | cut -f1) KiB allocated)"
done
if [ "$WRITER" = relocwriter ]; then
	"$B/tests/relocwriter" --check "$VMS/disk0.img" --model "$DEMO_DIR/disk0.img.final" | sed 's/^/   /'
fi

say "the mount now serves the new storage; new files land there too"
echo hello > "$VMS/created-after-cutover"
ls "$NEW" | sed 's/^/   /'
"$B/relocctl" -m "$VMS" status | sed 's/^/   /'
echo
PAUSE=$("$B/relocctl" -m "$VMS" status --json | sed -n 's/.*"last_cutover_ms":\([0-9.e+-]*\).*/\1/p')
PAUSE=$(printf '%.1f' "$PAUSE")
echo "demo: relocated ${IMG_MB} MiB live under a writer; I/O was held ${PAUSE} ms at cutover"
