#!/bin/bash
test_description='a CREATE that reaches relocfs for a name the kernel still caches as absent (made behind the mount): on a plain file it opens and truncates as open(2) does; on a file a job is moving it is refused with EBUSY and the frozen base is left whole, so the cutover delivers every byte; and a job that starts while such a CREATE is between its name check and its open (a delay point holds it there) is not cut into either'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
# negative entries cached for a minute: the kernel sends CREATE, not OPEN
relocfs_mount -o timeout=60

# open_creat PATH: open(PATH, O_WRONLY|O_CREAT|O_TRUNC) by the shell's own
# redirection (no interpreter to start: the kernel's absent entry must
# still be there), write "new"; prints "ok" or the shell's error
open_creat() {
	local err
	if err=$( { printf new >"$1"; } 2>&1 ); then
		echo ok
	else
		echo "${err##*: }"
	fi
}

# absent NAME: the mount looks NAME up and caches that it is not there
absent() {
	if stat "$TEST_MNT/$1" >/dev/null 2>&1; then
		fail "'$1' is there before the test made it"
	fi
}

# hidden_image NAME: a 4 MiB image made behind the mount's cached absent
# entry for NAME; its sha256 in $want
hidden_image() {
	head -c 4M /dev/urandom >"$TEST_SRC/.new"
	want=$(sha256sum <"$TEST_SRC/.new")
	absent "$1"
	mv "$TEST_SRC/.new" "$TEST_SRC/$1"
}

step 'a plain file made behind a cached absent entry: created over, truncated'
absent plain
printf 'the old contents\n' >"$TEST_SRC/plain"
assert_eq ok "$(open_creat "$TEST_MNT/plain")" "O_CREAT|O_TRUNC open"
assert_eq new "$(cat "$TEST_SRC/plain")" "the backing file"

# Other tests may drop the dentry cache meanwhile, and the kernel then looks
# the name up and sends OPEN: that truncates the image's live view, as it
# should, and leaves the base frozen.  The check runs again, on a new image,
# until the kernel sends CREATE (EBUSY).
step 'O_CREAT|O_TRUNC through the stale entry of a moving image is refused; its base is whole'
for try in $(seq 10); do
	name=vm$try.img
	hidden_image "$name"
	ctl migrate --to "$TEST_DST" --job "c$try" "$name" >/dev/null
	got=$(open_creat "$TEST_MNT/$name")
	assert_eq "$want" "$(sha256sum <"$TEST_SRC/$name")" "the frozen base of $name"
	[ "$got" = ok ] || break
	say "the kernel opened $name by OPEN (its absent entry was dropped): again"
	ctl abort --job "c$try" >/dev/null
done
assert_eq "Device or resource busy" "$got" "O_CREAT|O_TRUNC open of a moving file"

step 'with the stale entry dropped, the cutover delivers every byte'
echo 2 >/proc/sys/vm/drop_caches
ctl wait --job "c$try" --timeout 120 >/dev/null
ctl cutover --job "c$try" --timeout 60 >/dev/null
assert_eq "$want" "$(sha256sum <"$TEST_MNT/$name")" "the mount after the cutover"
assert_eq "$want" "$(sha256sum <"$TEST_DST/$name")" "the destination"

# creates_delayed: how many CREATEs have reached the delay point
creates_delayed() {
	grep -c "delay point 'create-open' reached" "$TEST_DIR/relocfs.log" || true
}

step 'a job starts while the CREATE waits between its name check and its open: refused, the base is whole'
relocfs_umount
RELOCFS_DELAYPOINT=create-open:1500000 relocfs_mount -o timeout=60
for try in $(seq 10); do
	name=race$try.img
	hidden_image "$name"
	before=$(creates_delayed)
	open_creat "$TEST_MNT/$name" >"$TEST_DIR/race.out" &
	wait_until 10 eval '[ "$(creates_delayed)" -gt "$before" ]' || true
	ctl migrate --to "$TEST_DST" --job "r$try" "$name" >/dev/null
	wait $!
	got=$(cat "$TEST_DIR/race.out")
	[ "$(creates_delayed)" -gt "$before" ] && break
	# OPEN, not CREATE: it truncated the file before the job began
	say "the kernel opened $name by OPEN (its absent entry was dropped): again"
	ctl abort --job "r$try" >/dev/null
done
assert_eq "$want" "$(sha256sum <"$TEST_SRC/$name")" "the frozen base of $name"
assert_eq "Device or resource busy" "$got" "O_CREAT|O_TRUNC open racing the job's start"
ctl wait --job "r$try" --timeout 120 >/dev/null
ctl cutover --job "r$try" --timeout 60 >/dev/null
assert_eq "$want" "$(sha256sum <"$TEST_DST/$name")" "the destination after the cutover"
relocfs_umount
test_done
