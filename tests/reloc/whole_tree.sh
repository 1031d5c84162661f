#!/bin/bash
test_description='migrate a whole tree (nested directories, symlinks, a fifo, special modes, owners, modes, xattrs) under a writer: names are pinned (EBUSY) while it migrates, and after the cutover DEST is the same tree'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
require_root

step 'a tree in the source: nested directories, symlinks, a fifo, owners, modes, an xattr'
# hard links have a test of their own (whole_tree_hardlink.sh)
S=$TEST_SRC
mkdir -p "$S/a/b/c" "$S/e" "$S/a/empty"
head -c 100000 /dev/urandom >"$S/a/f1"
head -c 5000 /dev/urandom >"$S/a/b/f2"
head -c 1048576 /dev/urandom >"$S/a/b/c/deep.img"
: >"$S/a/zero"
truncate -s 10M "$S/a/sparse"
printf 'island' | dd of="$S/a/sparse" bs=1 seek=$((5 << 20)) conv=notrunc status=none
ln -s f1 "$S/a/link_rel"
ln -s /nonexistent/target "$S/a/b/dangling"
ln -s ../../a/b/c/deep.img "$S/e/link_up"
mkfifo "$S/a/fifo"
chmod 0600 "$S/a/b/f2"
chmod 0750 "$S/a/b"
chmod 0700 "$S/e"
chmod 4755 "$S/a/zero"
chown 1234:5678 "$S/a/b/f2"
chown 42:43 "$S/e"
chown -h 77:88 "$S/a/link_rel"
touch -d '2001-02-03 04:05:06.789' "$S/a/f1" "$S/a/sparse"
have_xattr=
if command -v setfattr >/dev/null && setfattr -n user.relocfs -v tag "$S/a/b/f2" 2>/dev/null; then
	have_xattr=1
fi
relocfs_mount

step 'a writer on a new image and on an existing one deep in the tree'
writer_start --seed 404 --direct --flush-every 32 --delay-us 2000 \
	--size 8M --file "$TEST_MNT/top.img" --file "$TEST_MNT/a/b/c/deep.img"
WRITTEN='top.img a/b/c/deep.img'

step 'migrate the whole tree (no FILE)'
ctl migrate --to "$TEST_DST" --rate 16M >/dev/null

step 'while it migrates, every namespace change fails with EBUSY'
M=$TEST_MNT
busy() {
	local out
	out=$(untrapped "$@" 2>&1) && fail "'$*' succeeded while the tree migrates"
	case $out in
	*'Device or resource busy'*) ;;
	*) fail "'$*' failed, but not with EBUSY: $out" ;;
	esac
}
busy touch "$M/newfile"
busy mkdir "$M/a/newdir"
busy rm "$M/a/b/f2"
busy rmdir "$M/a/empty"
busy mv "$M/a/f1" "$M/a/f1.renamed"
busy ln "$M/a/f1" "$M/a/another_link"
busy ln -s f1 "$M/a/another_symlink"
busy mkfifo "$M/a/fifo2"
[ ! -e "$TEST_SRC/newfile" ] && [ ! -e "$TEST_DST/newfile" ] || fail "newfile exists somewhere"
assert_eq "$(tree_listing "$TEST_SRC" | grep -v -e 'top.img' -e 'deep.img')" \
	"$(tree_listing "$M" | grep -v -e 'top.img' -e 'deep.img')" "the tree through the mount"

step 'wait, cut over under the writer'
ctl wait --timeout 120 >/dev/null
ctl cutover --timeout 60 >/dev/null
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"
writer_stop 0
assert_eq "$TEST_DST" "$(status_field source)" "status source after cutover"

step 'the written files hold exactly what the writer wrote, through the mount and in DEST'
for f in $WRITTEN; do
	check_model exact "$TEST_MNT/$f" "$MODEL/$(basename "$f").final"
	check_model exact "$TEST_DST/$f" "$MODEL/$(basename "$f").final"
done

step 'DEST is the same tree as the source: entries, types, modes, owners, sizes, link targets, contents'
strip() { grep -v -e '^top.img ' -e '^a/b/c/deep.img '; }
assert_eq "$(tree_listing "$TEST_SRC" | strip)" "$(tree_listing "$TEST_DST" | strip)" "tree listing"
assert_eq "$(tree_listing "$TEST_SRC" | strip)" "$(tree_listing "$TEST_MNT" | strip)" "tree listing through the mount"
for f in a/f1 a/b/f2 a/zero a/sparse; do
	cmp "$TEST_SRC/$f" "$TEST_DST/$f" || fail "content of '$f' differs"
done

# kept for the last step: times and xattrs before anything else changes the tree
times() { (cd "$1" && find . -path ./.relocfs -prune -o ! -name top.img ! -name deep.img ! -path . -printf '%P %T@\n' | sort); }
times_src=$(times "$TEST_SRC")
times_dst=$(times "$TEST_DST")
xattr_dst=$(cd "$TEST_DST" && getfattr --only-values -n user.relocfs a/b/f2 2>&1 || true)

step 'after the cutover, namespace changes work again and land in DEST'
touch "$M/newfile"
mkdir "$M/a/newdir"
mv "$M/a/b/f2" "$M/a/b/f2.renamed"
rmdir "$M/a/empty"
[ -e "$TEST_DST/newfile" ] && [ -d "$TEST_DST/a/newdir" ] && [ -e "$TEST_DST/a/b/f2.renamed" ] &&
	[ ! -e "$TEST_DST/a/empty" ] || fail "namespace changes did not land in DEST: $(cd "$TEST_DST" && find . | sort)"
[ ! -e "$TEST_SRC/newfile" ] && [ -e "$TEST_SRC/a/b/f2" ] || fail "namespace changes reached the source"
relocfs_umount

step 'the xattr came along, and the modification times of files, directories, symlinks and the fifo'
[ -p "$TEST_DST/a/fifo" ] || fail "DEST/a/fifo is not a fifo"
[ -z "$have_xattr" ] || assert_eq "tag" "$xattr_dst" "xattr user.relocfs of DEST/a/b/f2"
assert_eq "$times_src" "$times_dst" "mtimes in the source (expected) and DEST (actual)"

test_done
