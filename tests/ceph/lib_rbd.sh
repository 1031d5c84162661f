# tests/ceph/lib_rbd.sh: sourced by the RBD relocation tests after lib.sh,
# tests/reloc/lib_reloc.sh and lib_ceph.sh.
#
#   $RBD_PREFIX      image names of this test: the test's name and pid, so
#                    that tests sharing a cluster never meet
#   $RBD_DEST        the destination for relocctl: rbd:rbd/$RBD_PREFIX
#   image_of FILE    the image a file at the top of the mount becomes
#   rbd_export_to IMAGE PATH   the image's data as a file (rbd export)

RBD_PREFIX=$TEST_NAME-$$-
RBD_DEST=rbd:rbd/$RBD_PREFIX

image_of() {
	echo "$RBD_PREFIX$1"
}

rbd_export_to() {
	rm -f "$2"
	rbd_ export "rbd/$1" "$2" >/dev/null 2>"$TEST_DIR/rbd_export.err" ||
		fail "rbd export of '$1': $(cat "$TEST_DIR/rbd_export.err")"
}

# rbd_images: this test's images in the pool, one a line, sorted
rbd_images() {
	rbd_ ls rbd 2>/dev/null | grep -F -- "$RBD_PREFIX" | sort || true
}
