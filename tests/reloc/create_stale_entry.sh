#!/bin/bash
test_description='a CREATE that reaches relocfs for a name the kernel still caches as absent (made behind the mount): on a plain file it opens and truncates as open(2) does; on a file a job is moving it is refused with EBUSY and the frozen base is left whole, so the cutover delivers every byte'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
require_cmd python3
# negative entries cached for a minute: the kernel sends CREATE, not OPEN
relocfs_mount -o timeout=60

# open_creat PATH: open(PATH, O_WRONLY|O_CREAT|O_TRUNC), write "new"; prints
# "ok" or the errno's name
open_creat() {
	python3 - "$1" <<'EOF'
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"new")
    os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}

# absent NAME: the mount looks NAME up and caches that it is not there
absent() {
	if stat "$TEST_MNT/$1" >/dev/null 2>&1; then
		fail "'$1' is there before the test made it"
	fi
}

step 'a plain file made behind a cached absent entry: created over, truncated'
absent plain
printf 'the old contents\n' >"$TEST_SRC/plain"
assert_eq ok "$(open_creat "$TEST_MNT/plain")" "O_CREAT|O_TRUNC open"
assert_eq new "$(cat "$TEST_SRC/plain")" "the backing file"

step 'an image made behind a cached absent entry, then moved by a job'
absent vm.img
head -c 4M /dev/urandom >"$TEST_SRC/vm.img"
want=$(sha256sum <"$TEST_SRC/vm.img")
ctl migrate --to "$TEST_DST" vm.img >/dev/null

step 'O_CREAT|O_TRUNC through the stale entry is refused; the base is whole'
assert_eq EBUSY "$(open_creat "$TEST_MNT/vm.img")" "O_CREAT|O_TRUNC open of a moving file"
assert_eq "$want" "$(sha256sum <"$TEST_SRC/vm.img")" "the frozen base"

step 'with the stale entry dropped, the cutover delivers every byte'
echo 2 >/proc/sys/vm/drop_caches
ctl wait --timeout 120 >/dev/null
ctl cutover --timeout 60 >/dev/null
assert_eq "$want" "$(sha256sum <"$TEST_MNT/vm.img")" "the mount after the cutover"
assert_eq "$want" "$(sha256sum <"$TEST_DST/vm.img")" "the destination"
test_done
