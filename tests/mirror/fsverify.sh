#!/bin/bash
test_description='fsverify through the mount: 40 seeds of random pwrite/pread/truncate/fallocate/O_DIRECT/mmap/fsync/SEEK_DATA operations checked against a model, and the backing files equal the model afterwards'
. "$(dirname "$0")/../lib.sh"
require_tool fsverify
FSV=$TOOLS/fsverify
SEEDS=${RELOCFS_FSVERIFY_SEEDS:-40}

step 'fsverify detects a corrupted file (the verifier itself can fail)'
"$FSV" --seed 7 --ops 300 --model-out "$TEST_DIR/model-sanity" "$TEST_DIR/plain-sanity" >/dev/null
cp "$TEST_DIR/plain-sanity" "$TEST_DIR/bad-sanity"
printf '\377' | dd of="$TEST_DIR/bad-sanity" bs=1 seek=100 conv=notrunc status=none
cmp -s "$TEST_DIR/plain-sanity" "$TEST_DIR/bad-sanity" && printf '\000' | dd of="$TEST_DIR/bad-sanity" bs=1 seek=100 conv=notrunc status=none
expect_fail "$FSV" --check-against "$TEST_DIR/model-sanity" "$TEST_DIR/bad-sanity"
case $ERR_OUT in *"mismatch at offset 100 "*) ;; *) fail "unexpected message: $ERR_OUT";; esac

relocfs_mount

# run_seed SEED ARGS...: one fsverify run on the mount; then the backing
# file(s) must equal the model it wrote
run_seed() {
	local seed=$1 target
	shift
	case " $* " in
	*" --files "*) target=$TEST_MNT/dir$seed; mkdir "$target" ;;
	*) target=$TEST_MNT/file$seed ;;
	esac
	"$FSV" --seed "$seed" --model-out "$TEST_DIR/model$seed" "$@" "$target" >"$TEST_DIR/out" 2>&1 ||
		fail "fsverify --seed $seed $*: $(cat "$TEST_DIR/out")"
	say "  $(cat "$TEST_DIR/out")"
	"$FSV" --check-against "$TEST_DIR/model$seed" "$TEST_SRC/${target#"$TEST_MNT/"}" >"$TEST_DIR/out" 2>&1 ||
		fail "backing file of seed $seed differs from the model: $(cat "$TEST_DIR/out")"
	rm -rf "$target" "$TEST_DIR/model$seed"
}

step "$SEEDS seeds: one thread (buffered, O_DIRECT), 4 threads in one file, 3 threads on 6 files"
for seed in $(seq 1 "$SEEDS"); do
	case $((seed % 8)) in
	0|1|2) run_seed "$seed" --ops 2000 ;;
	3|4) run_seed "$seed" --ops 2000 --direct ;;
	5) run_seed "$seed" --ops 1000 --threads 4 --size 4M ;;
	6) run_seed "$seed" --ops 1000 --threads 4 --size 4M --direct --sync-every 50 ;;
	7) run_seed "$seed" --ops 600 --threads 3 --files 6 --direct ;;
	esac
done

step 'a file larger than 1 MiB requests, without mmap, fsync every 10 operations'
run_seed 1001 --ops 400 --size 8M --no-mmap --sync-every 10

step 'all files verified end up the same after unmount and remount'
"$FSV" --seed 2001 --ops 1000 --direct --model-out "$TEST_DIR/model2001" "$TEST_MNT/keep" >/dev/null
relocfs_umount
relocfs_mount
"$FSV" --check-against "$TEST_DIR/model2001" "$TEST_MNT/keep" >/dev/null || fail "'keep' differs from its model after remount"

relocfs_umount
test_done
