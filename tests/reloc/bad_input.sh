#!/bin/bash
test_description='relocctl with bad input: each refusal is one line on stderr with exit 1 (or 2 for usage), changes nothing, and the writer on the mount never notices'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"

mkdir -p "$TEST_SRC/vm" "$TEST_SRC/inside" "$TEST_DIR/outside"
echo secret >"$TEST_DIR/outside/file.img"
ln -s "$TEST_DIR/outside" "$TEST_SRC/escape"
ln -s "$TEST_DIR/outside/file.img" "$TEST_SRC/vm/link.img"
head -c 100000 /dev/urandom >"$TEST_SRC/vm/static.img"
mkdir -p "$TEST_DIR/full" && echo x >"$TEST_DIR/full/x"
echo notadir >"$TEST_DIR/afile"
relocfs_mount
writer_start --seed 707 --direct --flush-every 32 --delay-us 2000 --size 8M --file "$TEST_MNT/vm/disk.img"

# refused RC WHAT CMD...: CMD exits with RC, says one line on stderr starting
# with "relocctl: " and nothing on stdout; the writer is still at work.
# RC is 1 (the request cannot be done in this state), 2 (usage: the command
# line itself is wrong), or "1|2" for an argument whose value can never be
# valid, where either reading is defensible.
# Wrong refusals are collected in $WRONG and reported together at the end,
# so that one run shows every case.
WRONG=
refused() {
	local want=$1 what=$2 rc=0 out err
	shift 2
	out=$(untrapped "$@" 2>"$TEST_DIR/refused.err") || rc=$?
	err=$(cat "$TEST_DIR/refused.err")
	say "  $what: exit $rc: $err"
	if [ "$rc" = 0 ] && [[ " $* " == *" migrate "* ]]; then
		# accepted: undo it so that the next cases start from a clean state
		ctl abort >/dev/null 2>&1 || true
		find "$TEST_DST" -mindepth 1 -delete
	fi
	case "|$want|" in *"|$rc|"*) ;; *) WRONG+="
    $what: exited with $rc, expected $want: $*" ;;
	esac
	LAST_ERR=$err
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [ -n "$err" ] || WRONG+="
    $what: expected one line on stderr, got: $err"
	case $err in "relocctl: "?*) ;; *) WRONG+="
    $what: stderr does not start with 'relocctl: ': $err" ;; esac
	[ -z "$out" ] || WRONG+="
    $what: unexpected output on stdout: $out"
	writer_running || fail "$what: the writer stopped: $(cat "$TEST_DIR/writer.log")"
}

# nothing_migrates: status lists no migrating file
nothing_migrates() {
	assert_eq "" "$(status_json | jq -r '.files[] | select(.state != "idle" and .state != "done" and .state != "aborted") | .path')" \
		"files migrating after a refusal"
}

step 'commands that need a migration, with none running'
refused 1 "cutover with nothing migrating" ctl cutover --timeout 5
refused 1 "abort with nothing migrating" ctl abort
refused 1 "wait with nothing migrating" ctl wait --timeout 5
refused 1 "verify with nothing migrating" ctl verify

step 'bad destinations'
refused '1|2' "--to a directory inside the source" ctl migrate --to "$TEST_SRC/inside"
refused '1|2' "--to a directory inside the mount" ctl migrate --to "$TEST_MNT/inside"
case $LAST_ERR in *"$TEST_MNT/inside"*) ;; *) WRONG+="
    --to a directory inside the mount: the message does not name '$TEST_MNT/inside': $LAST_ERR" ;; esac
refused '1|2' "--to the source itself" ctl migrate --to "$TEST_SRC"
refused '1|2' "--to the mountpoint itself" ctl migrate --to "$TEST_MNT"
refused 1 "--to a non-empty directory" ctl migrate --to "$TEST_DIR/full"
refused '1|2' "--to a new directory inside the source" ctl migrate --to "$TEST_SRC/newinside"
refused 1 "--to a directory whose parent does not exist" ctl migrate --to "$TEST_DIR/missing/deeper"
refused 1 "--to a regular file" ctl migrate --to "$TEST_DIR/afile"
refused '1|2' "--to a parent of the source" ctl migrate --to "$TEST_DIR"
nothing_migrates
[ -z "$(ls -A "$TEST_SRC/inside")" ] && [ -z "$(ls -A "$TEST_DST")" ] || fail "a refused migrate left files behind"
[ ! -e "$TEST_SRC/newinside" ] || WRONG+="
    a refused migrate --to '$TEST_SRC/newinside' left that directory behind in the source"

step 'bad FILE arguments'
refused '1|2' "FILE with '..'" ctl migrate --to "$TEST_DST" vm/../vm/static.img
refused '1|2' "FILE that is '..' of the root" ctl migrate --to "$TEST_DST" ../outside/file.img
refused '1|2' "absolute FILE outside the mount" ctl migrate --to "$TEST_DST" "$TEST_DIR/outside/file.img"
refused 1 "FILE through a symlinked directory out of the tree" ctl migrate --to "$TEST_DST" escape/file.img
refused '1|2' "FILE that is a symlink out of the tree" ctl migrate --to "$TEST_DST" vm/link.img
refused 1 "FILE that does not exist" ctl migrate --to "$TEST_DST" vm/missing.img
refused '1|2' "FILE that is a directory" ctl migrate --to "$TEST_DST" vm
refused '1|2' "FILE that is the state directory" ctl migrate --to "$TEST_DST" .relocfs
nothing_migrates
[ -z "$(ls -A "$TEST_DST")" ] || fail "a refused migrate left files in DEST: $(ls -A "$TEST_DST")"
assert_eq "secret" "$(cat "$TEST_DIR/outside/file.img")" "the file outside the tree"

step 'usage errors exit 2'
refused 2 "unknown command" ctl frobnicate
refused 2 "unknown option of relocctl" "$RELOCCTL" --bogus -m "$TEST_MNT" status
refused 2 "unknown option of migrate" ctl migrate --to "$TEST_DST" --bogus
refused 2 "migrate without --to" ctl migrate
refused 2 "--rate that is not a number" ctl migrate --to "$TEST_DST" --rate lots
refused 2 "wait --timeout without a value" ctl wait --timeout
nothing_migrates

step 'relocctl against a directory with no daemon'
mkdir -p "$TEST_DIR/nomount"
refused 1 "status of a plain directory" "$RELOCCTL" -m "$TEST_DIR/nomount" status
refused 1 "migrate on a plain directory" "$RELOCCTL" -m "$TEST_DIR/nomount" migrate --to "$TEST_DST"

step 'a second migrate while one runs is refused; the first goes on and can be aborted'
ctl migrate --to "$TEST_DST" --rate 1M vm/disk.img >/dev/null
mkdir "$TEST_DIR/dst2"
refused 1 "second migrate while one runs" ctl migrate --to "$TEST_DIR/dst2" vm/static.img
refused 1 "second migrate of the same file" ctl migrate --to "$TEST_DIR/dst2" vm/disk.img
[ -z "$(ls -A "$TEST_DIR/dst2")" ] || fail "the refused second migrate left files in dst2"
assert_eq "vm/disk.img" "$(status_json | jq -r '.files[].path')" "files in status"
ctl abort >/dev/null

step 'the writer never noticed: its files hold exactly what it wrote'
writer_stop 0
check_final "$TEST_MNT/vm" disk.img
check_final "$TEST_SRC/vm" disk.img
[ -z "$(find "$TEST_DST" -mindepth 1 ! -type d -print -quit)" ] ||
	fail "files left in DEST after the abort: $(cd "$TEST_DST" && find . -mindepth 1 | sort)"
relocfs_umount

step 'every refusal had the right exit status and one line on stderr'
[ -z "$WRONG" ] || fail "wrong refusals:$WRONG"
test_done
