#!/bin/bash
test_description='a files job that starts while an unlink of its file, a rename of it, a rename of a directory above it, or a hard link to it has passed its name check and not yet acted (a delay point holds each there) does not start on a name that is gone: its start waits for the request, which goes ahead, then fails with one line and leaves nothing behind; a start on the new name runs and cuts over every byte'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
RELOCFS_DELAYPOINT=remove-checked:3000000,rename-checked:3000000,link-checked:3000000 relocfs_mount

# delayed POINT: how many requests have reached the delay point
delayed() {
	grep -c "delay point '$1' reached" "$TEST_DIR/relocfs.log" || true
}

# image PATH: a 4 MiB image at PATH under the mount; its sha256 in $want
image() {
	head -c 4M /dev/urandom >"$TEST_MNT/$1"
	want=$(sha256sum <"$TEST_MNT/$1")
}

# race POINT JOB FILE CMD...: CMD runs in the background until it waits at
# POINT; then the job starts on FILE and must fail because of it; CMD must
# succeed; WHY: what the refusal says after the file's name
race() {
	local point=$1 job=$2 file=$3 before pid rc=0
	local why=${WHY:-was renamed or removed as the job started; nothing started}
	shift 3
	before=$(delayed "$point")
	"$@" &
	pid=$!
	wait_until 10 eval '[ "$(delayed "$point")" -gt "$before" ]' ||
		fail "'$*' did not reach the delay point '$point'"
	expect_fail ctl migrate --to "$TEST_DST" --job "$job" "$file"
	assert_eq "relocctl: '$file' $why" \
		"$ERR_OUT" "the start racing '$*'"
	wait "$pid" || rc=$?
	assert_eq 0 "$rc" "exit status of '$*'"
	assert_eq 0 "$(ctl status --json | jq '[.jobs[] | select(.name == "'"$job"'")] | length')" \
		"jobs named $job"
	assert_eq "" "$(ls -A "$TEST_DST")" "what the failed start left in the destination"
}

step 'an unlink of the file'
mkdir "$TEST_MNT/a"
image a/u.img
race remove-checked u a/u.img rm "$TEST_MNT/a/u.img"
[ ! -e "$TEST_SRC/a/u.img" ] || fail "a/u.img is still in the source"

step 'a rename of the file; a job on its new name cuts over every byte'
image a/r.img
race rename-checked r a/r.img mv "$TEST_MNT/a/r.img" "$TEST_MNT/a/r2.img"
ctl migrate --to "$TEST_DST" --job r a/r2.img >/dev/null
ctl wait --job r --timeout 120 >/dev/null
ctl cutover --job r --timeout 60 >/dev/null
assert_eq "$want" "$(sha256sum <"$TEST_DST/a/r2.img")" "a/r2.img in the destination"
assert_eq "$want" "$(sha256sum <"$TEST_MNT/a/r2.img")" "a/r2.img through the mount"
rm -rf "${TEST_DST:?}"/*

step 'a rename of the directory above the file'
mkdir "$TEST_MNT/d"
image d/x.img
race rename-checked x d/x.img mv "$TEST_MNT/d" "$TEST_MNT/e"
assert_eq "$want" "$(sha256sum <"$TEST_MNT/e/x.img")" "e/x.img through the mount"

step 'a hard link to the file: a files job moves only a file of one name'
image a/l.img
WHY="was given another name (a hard link) before the job started; nothing started" \
	race link-checked l a/l.img ln "$TEST_MNT/a/l.img" "$TEST_MNT/a/l2.img"
assert_eq "$want" "$(sha256sum <"$TEST_MNT/a/l2.img")" "a/l2.img through the mount"

relocfs_umount
test_done
