#!/bin/bash
test_description='dpkg-buildpackage -b builds relocfs_VERSION_ARCH.deb; lintian reports no error; dpkg -i installs it; the installed relocfs mounts with mount -t fuse.relocfs (mount-only options passed over) and from an fstab line over its own directory, and migrates with the installed relocctl; dpkg -r leaves no daemon and no mount behind; /etc/fstab is restored on every exit path'
. "$(dirname "$0")/../lib.sh"
require_root
require_cmd dpkg-buildpackage dh lintian systemd-analyze mount.fuse3 fusermount3
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
if dpkg-query -W -f='${Status}' relocfs 2>/dev/null | grep -q ' installed$'; then
	skip "a relocfs package is installed on this machine; the test would replace it"
fi
VERSION=$(cat "$TOPDIR/VERSION")
ARCH=$(dpkg --print-architecture)
DEB=$TEST_DIR/relocfs_${VERSION}_$ARCH.deb
INSTALLED=
FSTAB_SAVED=

pkg_cleanup() {
	if [ -n "$INSTALLED" ]; then
		dpkg -P relocfs >"$TEST_DIR/dpkg-r.log" 2>&1 || cat "$TEST_DIR/dpkg-r.log"
	fi
	if [ -n "$FSTAB_SAVED" ] && ! cmp -s "$TEST_DIR/fstab.orig" /etc/fstab; then
		cat "$TEST_DIR/fstab.orig" >/etc/fstab
	fi
}
at_cleanup pkg_cleanup

# daemons of the installed package serving something in this test
installed_daemons() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/relocfs ] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$TEST_DIR/" && echo "${p#/proc/}"
	done
	return 0
}

step 'dpkg-buildpackage -b -us -uc builds the package from a copy of the tree'
mkdir "$TEST_DIR/relocfs"
if git -C "$TOPDIR" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$TOPDIR" && git ls-files -co --exclude-standard) >"$TEST_DIR/filelist"
else
	(cd "$TOPDIR" && find . -path './build*' -prune -o -type f -print) >"$TEST_DIR/filelist"
fi
(cd "$TOPDIR" && tar -cf - -T "$TEST_DIR/filelist") | tar -xf - -C "$TEST_DIR/relocfs"
(cd "$TEST_DIR/relocfs" && dpkg-buildpackage -b -us -uc) >"$TEST_DIR/build.log" 2>&1 ||
	fail "dpkg-buildpackage failed: $(tail -n 30 "$TEST_DIR/build.log")"
[ -f "$DEB" ] || fail "no $DEB; there are: $(ls "$TEST_DIR")"

step 'lintian reports no error'
lintian --fail-on error "$TEST_DIR/relocfs_${VERSION}_$ARCH.changes" >"$TEST_DIR/lintian.log" 2>&1 ||
	fail "lintian: $(cat "$TEST_DIR/lintian.log")"
grep -v 'running with root privileges' "$TEST_DIR/lintian.log" | sed 's/^/  lintian: /' || true

step 'the package: the files, dependencies from shlibs and on fuse3, the version of VERSION'
assert_eq "$VERSION" "$(dpkg-deb -f "$DEB" Version)" "Version"
depends=$(dpkg-deb -f "$DEB" Depends)
for lib in fuse3 libc6 libfuse3-3 libjansson4 libsystemd0 libxxhash0; do
	grep -q "\(^\|, \)$lib\( \|,\|$\)" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
contents=$(dpkg-deb -c "$DEB" | awk '{ print $6 }')
for f in ./usr/sbin/relocfs ./usr/sbin/relocctl ./lib/systemd/system/relocfs@.service \
	./usr/share/man/man8/relocfs.8.gz ./usr/share/man/man8/relocctl.8.gz ./usr/share/man/man7/relocfs.7.gz \
	./usr/share/bash-completion/completions/relocctl ./usr/share/doc/relocfs/copyright; do
	grep -qxF "$f" <<<"$contents" || fail "the package has no $f"
done

step 'dpkg -i installs it; the installed programs tell the version'
INSTALLED=1
dpkg -i "$DEB" >"$TEST_DIR/dpkg-i.log" 2>&1 || fail "dpkg -i: $(cat "$TEST_DIR/dpkg-i.log")"
assert_eq "relocfs $VERSION" "$(/usr/sbin/relocfs --version | cut -d' ' -f1-2)" "relocfs --version"
assert_eq "relocctl $VERSION" "$(/usr/sbin/relocctl --version)" "relocctl --version"
man -w relocctl >/dev/null 2>&1 || fail "man does not find relocctl(8)"

step 'systemd-analyze verify accepts an instance of the installed unit'
mkdir -p "$TEST_DIR/images"
out=$(systemd-analyze verify "relocfs@$(systemd-escape --path "$TEST_DIR/images").service" 2>&1) ||
	fail "systemd-analyze verify: $out"
assert_eq "" "$out" "systemd-analyze verify's output"

step 'mount -t fuse.relocfs with mount-only options among them mounts; the installed relocfs serves'
printf 'first image\n' >"$TEST_SRC/vm1.img"
head -c 3M /dev/urandom >"$TEST_SRC/vm2.img"
mount -t fuse.relocfs "$TEST_SRC" "$TEST_MNT" -o allow_other,_netdev,nofail,relatime,x-systemd.device-timeout=10 \
	2>"$TEST_DIR/mount.err" || fail "mount -t fuse.relocfs: $(cat "$TEST_DIR/mount.err")"
is_mounted "$TEST_MNT" || fail "'$TEST_MNT' is not mounted"
[ -n "$(installed_daemons)" ] || fail "no /usr/sbin/relocfs serves the mount"
assert_eq "first image" "$(cat "$TEST_MNT/vm1.img")" "a file through the mount"
grep -q "allow_other" <<<"$(awk -v m="$TEST_MNT" '$5 == m' /proc/self/mountinfo)" ||
	fail "allow_other did not reach the mount: $(awk -v m="$TEST_MNT" '$5 == m' /proc/self/mountinfo)"

step 'a migration with the installed relocctl: migrate, wait, verify, cutover'
ctl() { /usr/sbin/relocctl -m "$TEST_MNT" "$@"; }
mkdir "$TEST_DIR/dst"
ctl migrate --to "$TEST_DIR/dst" >/dev/null
echo "written during the migration" >>"$TEST_MNT/vm1.img"
ctl wait --timeout 60 >/dev/null
ctl verify >/dev/null
ctl cutover --timeout 60 >/dev/null
assert_eq "$TEST_DIR/dst" "$(ctl status --json | jq -r .source)" "status source after cutover"
cmp "$TEST_SRC/vm2.img" "$TEST_DIR/dst/vm2.img" || fail "vm2.img differs in the destination"
assert_eq "first image
written during the migration" "$(cat "$TEST_DIR/dst/vm1.img")" "vm1.img in the destination"

step 'umount ends the daemon'
umount "$TEST_MNT"
wait_until 10 eval '[ -z "$(installed_daemons)" ]' || fail "relocfs still runs after umount: $(installed_daemons)"

step 'an fstab line mounts a directory over itself with mount MOUNTPOINT'
OVER=$TEST_DIR/over
mkdir "$OVER"
printf 'in place\n' >"$OVER/disk.img"
cp /etc/fstab "$TEST_DIR/fstab.orig"
FSTAB_SAVED=1
printf '%s %s fuse.relocfs defaults,allow_other,nofail,_netdev,x-systemd.automount,comment=relocfs-test 0 0\n' \
	"$OVER" "$OVER" >>/etc/fstab
mount "$OVER" 2>"$TEST_DIR/mount.err" || fail "mount '$OVER': $(cat "$TEST_DIR/mount.err")"
is_mounted "$OVER" || fail "'$OVER' is not mounted"
assert_eq "in place" "$(cat "$OVER/disk.img")" "the file that was there, through the mount"
echo "through the mount" >"$OVER/new.img"
assert_eq "$OVER" "$(/usr/sbin/relocctl -m "$OVER" status --json | jq -r .source)" "status source"
[ ! -e "$OVER/.relocfs" ] || fail "the mount shows .relocfs"

step 'dpkg -r with the fstab mount still up: no daemon and no mount are left; the files are in the directory'
dpkg -r relocfs >"$TEST_DIR/dpkg-r.log" 2>&1 || fail "dpkg -r: $(cat "$TEST_DIR/dpkg-r.log")"
assert_eq "" "$(installed_daemons)" "daemons of the removed package"
! is_mounted "$OVER" || fail "'$OVER' is still mounted after dpkg -r"
assert_eq "through the mount" "$(cat "$OVER/new.img")" "the file written through the mount"
[ ! -e /usr/sbin/relocfs ] || fail "/usr/sbin/relocfs is still there"
! dpkg-query -W -f='${Status}' relocfs 2>/dev/null | grep -q ' installed$' || fail "relocfs is still installed"

step 'dpkg -P purges what is left of it; /etc/fstab is restored'
dpkg -P relocfs >"$TEST_DIR/dpkg-p.log" 2>&1 || fail "dpkg -P: $(cat "$TEST_DIR/dpkg-p.log")"
assert_eq "" "$(dpkg-query -W -f='${db:Status-Abbrev}' relocfs 2>/dev/null | tr -d ' ')" "the package's status"
cat "$TEST_DIR/fstab.orig" >/etc/fstab
cmp -s "$TEST_DIR/fstab.orig" /etc/fstab || fail "/etc/fstab differs from before"

test_done
