#!/bin/bash
test_description='make install puts the programs, man pages, unit and completion where PREFIX, SBINDIR, MANDIR, UNITDIR and BASHCOMPDIR say, and make uninstall removes them; the man pages render without a warning and document every option and command; systemd-analyze verify accepts the unit; the completion completes; one version everywhere'
. "$(dirname "$0")/../lib.sh"
require_cmd man systemd-analyze
[ -r /usr/share/bash-completion/bash_completion ] || skip "bash-completion is not installed (run tests/deps.sh)"
BUILD_NAME=${RELOCFS_BUILD:-build}
DEST=$TEST_DIR/dest
VERSION=$(cat "$TOPDIR/VERSION")

# files DIR: mode and path of every file below DIR
files() {
	(cd "$1" && find . -type f -printf '%m %P\n' | sort -k2)
}

install_into() {
	make -s -C "$TOPDIR" BUILD="$BUILD_NAME" "$@" >"$TEST_DIR/make.log" 2>&1 ||
		fail "make $*: $(cat "$TEST_DIR/make.log")"
}

step 'make install DESTDIR=... PREFIX=/usr installs exactly these files'
install_into install DESTDIR="$DEST" PREFIX=/usr
assert_eq "644 usr/lib/systemd/system/relocfs@.service
755 usr/sbin/relocctl
755 usr/sbin/relocfs
644 usr/share/bash-completion/completions/relocctl
644 usr/share/man/man7/relocfs.7
644 usr/share/man/man8/relocctl.8
644 usr/share/man/man8/relocfs.8" "$(files "$DEST")" "files under DESTDIR"
assert_eq "ExecStart=/usr/sbin/relocfs -f \$RELOCFS_OPTIONS \$RELOCFS_SOURCE %f
ExecReload=/usr/sbin/relocctl -m %f restart --exec /usr/sbin/relocfs" \
	"$(grep '^Exec' "$DEST/usr/lib/systemd/system/relocfs@.service")" "the unit's commands"

step 'make uninstall with the same variables removes every file'
install_into uninstall DESTDIR="$DEST" PREFIX=/usr
assert_eq "" "$(files "$DEST")" "files left under DESTDIR"

step 'SBINDIR, MANDIR, UNITDIR and BASHCOMPDIR move each kind of file, and the unit follows SBINDIR'
install_into install DESTDIR="$DEST" PREFIX=/opt/r SBINDIR=/opt/r/bin MANDIR=/opt/man \
	UNITDIR=/etc/systemd/system BASHCOMPDIR=/opt/bc
assert_eq "644 etc/systemd/system/relocfs@.service
644 opt/bc/relocctl
644 opt/man/man7/relocfs.7
644 opt/man/man8/relocctl.8
644 opt/man/man8/relocfs.8
755 opt/r/bin/relocctl
755 opt/r/bin/relocfs" "$(files "$DEST")" "files under DESTDIR"
grep -q '^ExecStart=/opt/r/bin/relocfs ' "$DEST/etc/systemd/system/relocfs@.service" ||
	fail "the unit does not run /opt/r/bin/relocfs: $(grep '^Exec' "$DEST/etc/systemd/system/relocfs@.service")"
install_into uninstall DESTDIR="$DEST" PREFIX=/opt/r SBINDIR=/opt/r/bin MANDIR=/opt/man \
	UNITDIR=/etc/systemd/system BASHCOMPDIR=/opt/bc
assert_eq "" "$(files "$DEST")" "files left under DESTDIR"

step 'the man pages render with man -l and man --warnings says nothing'
for page in relocfs.8 relocctl.8 relocfs.7; do
	warn=$(MANWIDTH=80 man --warnings -l "$TOPDIR/dist/$page" 2>&1 >"$TEST_DIR/$page.txt") ||
		fail "man -l $page failed: $warn"
	assert_eq "" "$warn" "warnings rendering $page"
	[ "$(wc -l <"$TEST_DIR/$page.txt")" -gt 50 ] || fail "$page rendered to $(wc -l <"$TEST_DIR/$page.txt") lines"
done

step 'relocfs(8) names every option relocfs --help lists; relocctl(8) every command and option of relocctl --help'
for opt in $("$RELOCFS" --help | grep -o -- ' -[a-zA-Z]\b\|--[a-z][a-z-]*' | sort -u); do
	grep -qF -- "$opt" "$TEST_DIR/relocfs.8.txt" || fail "relocfs(8) does not mention '$opt'"
done
for opt in $("$RELOCFS" --help | grep -o -- '-o [a-z_]*' | cut -c4- | sort -u); do
	grep -qF -- "-o $opt" "$TEST_DIR/relocfs.8.txt" || fail "relocfs(8) does not document '-o $opt'"
done
for cmd in $("$RELOCCTL" --help | sed -n '/^commands:/,$s/^  \([a-z][a-z]*\).*/\1/p'); do
	grep -q "^       $cmd\b" "$TEST_DIR/relocctl.8.txt" || fail "relocctl(8) has no entry for the command '$cmd'"
done
for opt in $("$RELOCCTL" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	grep -qF -- "$opt" "$TEST_DIR/relocctl.8.txt" || fail "relocctl(8) does not mention '$opt'"
done

step 'systemd-analyze verify accepts an instance of the unit, installed under a prefix with its programs and man pages'
install_into install PREFIX="$TEST_DIR/root"
mkdir -p "$TEST_DIR/var/images"
inst=$(systemd-escape --path "$TEST_DIR/var/images")
out=$(MANPATH="$TEST_DIR/root/share/man" systemd-analyze verify \
	"$TEST_DIR/root/lib/systemd/system/relocfs@$inst.service" 2>&1) ||
	fail "systemd-analyze verify failed: $out"
assert_eq "" "$out" "systemd-analyze verify's output"

step 'the unit: Type=notify, the fd store, ordered before libvirt, reload by relocctl restart'
unit=$TEST_DIR/root/lib/systemd/system/relocfs@.service
for line in Type=notify FileDescriptorStoreMax=4 'Before=libvirtd.service libvirt-guests.service' \
	"ExecReload=$TEST_DIR/root/sbin/relocctl -m %f restart --exec $TEST_DIR/root/sbin/relocfs" \
	'WantedBy=multi-user.target libvirtd.service'; do
	grep -qxF "$line" "$unit" || fail "the unit has no line '$line'"
done

step 'relocfs --version, relocctl --version and debian/changelog tell the version in VERSION'
assert_eq "relocfs $VERSION" "$("$RELOCFS" --version | cut -d' ' -f1-2)" "relocfs --version"
assert_eq "relocctl $VERSION" "$("$RELOCCTL" --version)" "relocctl --version"
assert_eq "$VERSION" "$(sed -n '1s/^relocfs (\([^)]*\)).*/\1/p' "$TOPDIR/debian/changelog")" "debian/changelog"
for page in relocfs.8 relocctl.8 relocfs.7; do
	grep -q "^\.TH .*\"relocfs $VERSION\"" "$TOPDIR/dist/$page" || fail "$page does not say relocfs $VERSION"
done

step 'bash completion: commands, options, hook kinds, directories, and job names only where the daemon has jobs'
cat >"$TEST_DIR/complete.sh" <<'EOS'
. /usr/share/bash-completion/bash_completion
. "$1"
# comp WORDS...: what completing the last word gives, sorted, on one line
comp() {
	COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
	read -ra COMP_WORDS <<<"$COMP_LINE"
	[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
	_relocctl relocctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	if [ ${#COMPREPLY[@]} = 0 ]; then
		echo "(none)"
	else
		printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' '
		echo
	fi
}
comp "relocctl "
comp "relocctl -"
comp "relocctl cutover --"
comp "relocctl cutover --hook "
comp "relocctl -m $2 status --"
comp "relocctl migrate --to $3"
comp "relocctl -m $2 wait --job "
EOS
mkdir -p "$TEST_DIR/stub" "$TEST_DIR/dirs/target"
ln -s "$RELOCCTL" "$TEST_DIR/stub/relocctl"
relocfs_mount
out=$(cd / && PATH="$TEST_DIR/stub:$PATH" bash "$TEST_DIR/complete.sh" \
	"$TOPDIR/dist/relocctl.bash-completion" "$TEST_MNT" "$TEST_DIR/dirs/t" 2>&1)
cmds=$("$RELOCCTL" --help | sed -n '/^commands:/,$s/^  \([a-z][a-z]*\).*/\1/p' | sort | tr '\n' ' ')
# cutover's options: its line and the lines that go on with them ("  [...")
opts=$("$RELOCCTL" --help | awk '/^  [a-z]/ { c = $1 } !/^  [a-z]/ && !/^ +\[/ { c = "" }
	c == "cutover"' | grep -o -- '--[a-z][a-z-]*' | sort -u | tr '\n' ' ')
assert_eq "$cmds
--help --version -V -h -m -s 
$opts
exec: freeze libvirt: none qmp: 
--job --json 
$TEST_DIR/dirs/target 
(none)" "$out" "completions (commands; options; cutover's options; hooks; status's options; --to; job names)"
relocfs_umount

step 'bash completion: job names come from the daemon where status --json lists jobs'
rm "$TEST_DIR/stub/relocctl"	# a symlink to the real one: not to be written through
cat >"$TEST_DIR/stub/relocctl" <<EOS
#!/bin/sh
case "\$*" in
*"status --json") echo '{"source":"/a","jobs":[{"name":"vm1","state":"copying"},{"name":"vm-2.x","state":"queued"}],"files":[]}' ;;
*) exec "$RELOCCTL" "\$@" ;;
esac
EOS
chmod +x "$TEST_DIR/stub/relocctl"
out=$(cd / && PATH="$TEST_DIR/stub:$PATH" bash "$TEST_DIR/complete.sh" \
	"$TOPDIR/dist/relocctl.bash-completion" "$TEST_MNT" "$TEST_DIR/dirs/t" 2>&1 | tail -n 1)
assert_eq "vm-2.x vm1 " "$out" "job names after --job"

test_done
