#!/bin/bash
test_description='with the writeback cache (the default) the backing file takes the mtime the mount shows: after each close and fdatasync, while the kernel writes back in the background, after the kernel drops its inodes, and across a cutover'
. "$(dirname "$0")/../lib.sh"
require_cmd python3
require_cmd jq
relocfs_mount
ctl() { "$RELOCCTL" -m "$TEST_MNT" "$@"; }

# same_times DIR: every file of DIR shows the same mtime and size through the
# mount as on DIR (the backing directory or a cutover's destination)
same_times() {
	local f b m s bad=0
	for f in "$1"/*; do
		b=${f##*/}
		m=$(stat -c '%y %s' "$TEST_MNT/$b")
		s=$(stat -c '%y %s' "$f")
		if [ "$m" != "$s" ]; then
			bad=$((bad + 1))
			say "    $b: mount $m, backing $s"
		fi
	done
	[ $bad = 0 ] || fail "$bad files show another mtime or size through the mount than on $1"
}

assert_eq true "$(ctl status --json | jq .writeback)" "status: writeback cache on by default"

# The kernel's periodic write-back sends a file's pages and its inode (the
# mtime it stamped) side by side: make it run every 10 ms meanwhile.
expire=$(cat /proc/sys/vm/dirty_expire_centisecs)
every=$(cat /proc/sys/vm/dirty_writeback_centisecs)
at_cleanup sysctl -qw "vm.dirty_expire_centisecs=$expire" "vm.dirty_writeback_centisecs=$every"
sysctl -qw vm.dirty_expire_centisecs=1 vm.dirty_writeback_centisecs=1

step '80 files, each written in bursts of buffered pwrites with pauses and closed: the same mtime and size through the mount and on the backing file'
python3 - "$TEST_MNT" <<'EOF'
import os, random, sys, time
random.seed(7)
for n in range(80):
    fd = os.open(f"{sys.argv[1]}/w{n:02d}", os.O_CREAT | os.O_RDWR, 0o644)
    for i in range(random.randint(1, 12)):
        os.pwrite(fd, bytes([n]) * 4096, random.randint(0, 100) * 4096)
        time.sleep(random.random() * 0.02)
    os.close(fd)
EOF
same_times "$TEST_SRC"

step 'the kernel drops its inodes: the mount shows the times it showed before'
before=$(cd "$TEST_MNT" && stat -c '%n %y %s' w*)
sync
echo 2 >/proc/sys/vm/drop_caches
assert_eq "$before" "$(cd "$TEST_MNT" && stat -c '%n %y %s' w*)" "mtimes and sizes after the kernel dropped its inodes"

step 'a file kept open and written with O_DIRECT, as QEMU with cache=none: after each fdatasync the backing file has the mount'"'"'s mtime'
python3 - "$TEST_MNT/direct" "$TEST_SRC/direct" <<'EOF'
import mmap, os, random, sys, time
buf = mmap.mmap(-1, 65536)
buf.write(os.urandom(65536))
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
for i in range(40):
    for k in range(random.randint(1, 8)):
        os.pwritev(fd, [buf], random.randint(0, 255) * 65536)
        time.sleep(random.random() * 0.005)
    os.fdatasync(fd)
    m, s = os.stat(sys.argv[1]), os.stat(sys.argv[2])
    if (m.st_mtime_ns, m.st_size) != (s.st_mtime_ns, s.st_size):
        sys.exit(f"after fdatasync {i}: mount {m.st_mtime_ns} {m.st_size}, "
                 f"backing {s.st_mtime_ns} {s.st_size}")
os.close(fd)
EOF

step 'touch -d through the mount sets the backing file'"'"'s time; a write after it moves both on'
touch -d '2001-02-03 04:05:06' "$TEST_MNT/w00"
assert_eq "2001-02-03 04:05:06.000000000" "$(stat -c %y "$TEST_SRC/w00" | cut -d' ' -f1,2)" "backing mtime after touch -d"
printf 'x' | dd of="$TEST_MNT/w00" bs=1 seek=5 conv=notrunc status=none
same_times "$TEST_SRC"
[ "$(stat -c %Y "$TEST_MNT/w00")" -gt 1000000000 ] || fail "the write did not move the mtime on"

step 'a file written during its migration keeps the mount'"'"'s mtime and size at the cutover'
mkdir "$TEST_DIR/dst"
ctl migrate --to "$TEST_DIR/dst" w01 w02 >/dev/null
python3 - "$TEST_MNT" <<'EOF'
import os, sys, time
for name in ("w01", "w02"):
    fd = os.open(f"{sys.argv[1]}/{name}", os.O_RDWR)
    for i in range(20):
        os.pwrite(fd, b"m" * 4096, (200 + i) * 4096)
        time.sleep(0.005)
    os.close(fd)
EOF
ctl wait --timeout 60 >/dev/null
before=$(cd "$TEST_MNT" && stat -c '%n %y %s' w01 w02)
ctl cutover >/dev/null
assert_eq "$before" "$(cd "$TEST_MNT" && stat -c '%n %y %s' w01 w02)" "the mount after the cutover"
assert_eq "$before" "$(cd "$TEST_DIR/dst" && stat -c '%n %y %s' w01 w02)" "the destination"
echo 2 >/proc/sys/vm/drop_caches
assert_eq "$before" "$(cd "$TEST_MNT" && stat -c '%n %y %s' w01 w02)" "the mount after the kernel dropped its inodes"

relocfs_umount
test_done
