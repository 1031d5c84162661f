#!/bin/bash
test_description='migrate into RBD with bad input (an unreachable cluster, a missing pool, an image in the way, a full cluster, bad specs): one line on stderr, no job, no image and no delta store left, the writer never notices; an abort removes the images a job made'
# test: one-at-a-time ceph
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../reloc/lib_reloc.sh"
. "$TOPDIR/tests/ceph/lib_ceph.sh"
. "$TOPDIR/tests/ceph/lib_rbd.sh"

step 'a one-node Ceph cluster reaches HEALTH_OK; a writer on the mount'
ceph_start
mkdir -p "$TEST_SRC/vm"
head -c 1M /dev/urandom >"$TEST_SRC/vm/small.img"
fallocate -l 300M "$TEST_SRC/big.img"	# more than the test cluster holds
relocfs_mount
writer_start --seed 1521 --direct --flush-every 32 --delay-us 2000 --size 8M --file "$TEST_MNT/disk.img"
# a configuration whose monitor nobody answers for
sed 's/^\(\s*mon host = \).*/\1[v1:127.0.0.1:9]/; s/^\(\s*client mount timeout = \).*/\13/' \
	"$CEPH_CONF" >"$TEST_DIR/dead.conf"
grep -q '127.0.0.1:9\]' "$TEST_DIR/dead.conf" || fail "cannot make dead.conf from $CEPH_CONF"
rbd_ create --size 1M "rbd/$(image_of disk.img)"

# refused RC PATTERN WHAT CMD...: CMD exits with RC and says one line on
# stderr, "relocctl: " and then something matching PATTERN; nothing
# migrates, no delta store and no image of this test but the one made
# above is left, and the writer is still at work
WRONG=
refused() {
	local want=$1 pat=$2 what=$3 rc=0 err left
	shift 3
	untrapped "$@" >/dev/null 2>"$TEST_DIR/refused.err" || rc=$?
	err=$(cat "$TEST_DIR/refused.err")
	say "  $what: exit $rc: $err"
	[ "$rc" = "$want" ] || WRONG+="
    $what: exited with $rc, expected $want"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || WRONG+="
    $what: expected one line on stderr, got: $err"
	[[ $err == "relocctl: "*$pat* ]] || WRONG+="
    $what: stderr does not say '$pat': $err"
	left=$(status_json | jq -r '.files[] | select(.state != "idle" and .state != "done") | .path')
	[ -z "$left" ] || { WRONG+="
    $what: files migrate after the refusal: $left"; ctl abort >/dev/null 2>&1 || true; }
	left=$(ls "$TEST_SRC/.relocfs/delta" 2>/dev/null || true)
	[ -z "$left" ] || WRONG+="
    $what: delta stores left: $left"
	left=$(rbd_images)
	[ "$left" = "$(image_of disk.img)" ] || WRONG+="
    $what: images left: $left"
	writer_running || fail "$what: the writer stopped: $(cat "$TEST_DIR/writer.log")"
}

step 'a cluster, a pool or an image that is not there, or in the way'
refused 1 "cannot reach the Ceph cluster" "unreachable cluster" \
	ctl migrate --to "$RBD_DEST" --ceph-conf "$TEST_DIR/dead.conf" vm/small.img
refused 1 "pool 'nopool' does not exist" "missing pool" \
	ctl migrate --to rbd:nopool --ceph-conf "$CEPH_CONF" vm/small.img
refused 1 "exists already" "image in the way" \
	ctl migrate --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" vm/small.img disk.img
refused 1 "bytes free" "more data than the cluster holds" \
	ctl migrate --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" big.img
refused 1 "cannot use Ceph configuration" "missing configuration file" \
	ctl migrate --to "$RBD_DEST" --ceph-conf "$TEST_DIR/none.conf" vm/small.img

step 'bad specs and options'
refused 2 "takes files" "no FILE" ctl migrate --to "$RBD_DEST" --ceph-conf "$CEPH_CONF"
refused 2 "rbd:POOL" "snapshot in the prefix" \
	ctl migrate --to "rbd:rbd/a@b" --ceph-conf "$CEPH_CONF" vm/small.img
refused 2 "rbd:POOL" "empty pool" ctl migrate --to "rbd:" --ceph-conf "$CEPH_CONF" vm/small.img
refused 2 "go with an RBD destination" "--ceph-id with a directory" \
	ctl migrate --to "$TEST_DST" --ceph-id admin vm/small.img
refused 2 "either in" "options twice" \
	ctl migrate --to "$RBD_DEST:id=admin" --ceph-conf "$CEPH_CONF" vm/small.img
[ -z "$WRONG" ] || fail "wrong refusals:$WRONG"

step 'a nested path becomes one image, its slashes escaped; abort removes it'
ctl migrate --to "$RBD_DEST" --ceph-conf "$CEPH_CONF" --rate 64K vm/small.img >/dev/null
assert_eq "$(image_of disk.img)
${RBD_PREFIX}vm%2Fsmall.img" "$(rbd_images)" "the images in the pool"
ctl abort >/dev/null
assert_eq "$(image_of disk.img)" "$(rbd_images)" "the images left after abort"
assert_eq "" "$(ls "$TEST_SRC/.relocfs/delta" 2>/dev/null || true)" "delta stores left after abort"
writer_stop 0
check_final "$TEST_MNT" disk.img
relocfs_umount
rbd_ rm "rbd/$(image_of disk.img)" >/dev/null 2>&1
test_done
