# tests/host/lib_host.sh: sourced by the host tests after tests/lib.sh.
#
# "The other host" on this machine: a directory ($OTHER) that a private
# OpenSSH server serves on a loopback port of its own, with keys made for
# the test, and that the "source host" mounts with sshfs at $DEST, as a
# virtualisation host would reach another host's disk.
#
#   host_sshd_start       make keys, start sshd on 127.0.0.1:$SSHD_PORT
#                         (a free port in 20000-23999); skip without sshd
#   host_sshfs_mount      mount $OTHER at $DEST with sshfs (-o options as
#                         an operator should give them: ServerAliveInterval
#                         so that a dead link becomes an error)
#   host_sshfs_cut        cut the connection: kill the sshd processes that
#                         serve it (children of our sshd, by pid); sshfs
#                         exits and the mount goes away
#   host_sshfs_umount
# Everything is undone when the test exits (at_cleanup).

OTHER=$TEST_DIR/other
DEST=$TEST_DIR/dest
SSHD_DIR=$TEST_DIR/sshd
SSHD_PID=
SSHD_PORT=

host_require() {
	require_root
	[ -x /usr/sbin/sshd ] || skip "openssh-server is not installed (tests/deps.sh)"
	require_cmd sshfs ssh-keygen fusermount3 socat jq ss
}

host_sshd_stop() {
	[ -n "$SSHD_PID" ] || return 0
	local p
	for p in $(ps -o pid= --ppid "$SSHD_PID" 2>/dev/null); do
		kill "$p" 2>/dev/null
	done
	kill "$SSHD_PID" 2>/dev/null
	wait "$SSHD_PID" 2>/dev/null
	SSHD_PID=
}

host_sshd_start() {
	local port try
	host_require
	mkdir -p "$SSHD_DIR" "$OTHER" "$DEST"
	ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/host_key" || fail "ssh-keygen failed"
	ssh-keygen -q -t ed25519 -N '' -f "$SSHD_DIR/id" || fail "ssh-keygen failed"
	cp "$SSHD_DIR/id.pub" "$SSHD_DIR/authorized_keys"
	chmod 600 "$SSHD_DIR/authorized_keys"
	mkdir -p /run/sshd	# the privilege separation directory sshd insists on
	for try in 1 2 3 4 5 6 7 8; do
		port=$(free_ports 20000 24000 1 $((try * 131))) || fail "no free port for sshd"
		cat >"$SSHD_DIR/sshd_config" <<-EOF
		Port $port
		ListenAddress 127.0.0.1
		HostKey $SSHD_DIR/host_key
		AuthorizedKeysFile $SSHD_DIR/authorized_keys
		PidFile $SSHD_DIR/sshd.pid
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		StrictModes no
		UsePAM no
		Subsystem sftp /usr/lib/openssh/sftp-server
		EOF
		/usr/sbin/sshd -D -e -f "$SSHD_DIR/sshd_config" >"$SSHD_DIR/sshd.log" 2>&1 &
		SSHD_PID=$!
		wait_until 10 host_sshd_settled
		if grep -qs "Server listening" "$SSHD_DIR/sshd.log"; then
			SSHD_PORT=$port
			at_cleanup host_sshd_stop
			return 0
		fi
		# it exited (another test took the port first) or hangs
		kill "$SSHD_PID" 2>/dev/null || true
		wait "$SSHD_PID" 2>/dev/null || true
		SSHD_PID=
		cp "$SSHD_DIR/sshd.log" "$SSHD_DIR/sshd.log.$try"
	done
	fail "sshd did not start: $(tail -n 3 "$SSHD_DIR/sshd.log")"
}

# host_sshd_settled: sshd listens, or has exited
host_sshd_settled() {
	grep -qs "Server listening" "$SSHD_DIR/sshd.log" || ! kill -0 "$SSHD_PID" 2>/dev/null
}

host_sshfs_umount() {
	if awk -v m="$DEST" '$5 == m' /proc/self/mountinfo | grep -q .; then
		fusermount3 -u "$DEST" 2>/dev/null || fusermount3 -uz "$DEST" 2>/dev/null
	fi
	return 0
}

host_sshfs_mount() {
	mkdir -p "$DEST"
	sshfs -o "IdentityFile=$SSHD_DIR/id,Port=$SSHD_PORT,BatchMode=yes" \
		-o StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR \
		-o ServerAliveInterval=2,ServerAliveCountMax=3 \
		"root@127.0.0.1:$OTHER" "$DEST" 2>"$SSHD_DIR/sshfs.err" ||
		fail "sshfs: $(cat "$SSHD_DIR/sshfs.err")"
	awk -v m="$DEST" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") print $(i + 1) }' \
		/proc/self/mountinfo | grep -q '^fuse.sshfs$' || fail "'$DEST' is not an sshfs mount"
	at_cleanup host_sshfs_umount
}

host_sshfs_cut() {
	local p n=0
	for p in $(ps -o pid= --ppid "$SSHD_PID" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null && n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "no sshd process served the sshfs connection"
}

# ---------------------------------------------------------------------------
# A guest that moves between two QEMU processes (needs tests/vm/guest.sh)
#
# The guest writes generations 1, 2, 3, ... to its two disks (vda raw,
# cache=none; vdb qcow2, cache=writeback) until the word STOP appears on a
# third disk outside the mount, then reads everything back and prints
# "VERIFY PASS gen=G" (the same script as tests/vm/e2e_qmp.sh).  Its console
# is the source QEMU's log until the hand-off, then the destination's.
#
#   host_guest_prepare        kernel, initramfs, images on $TEST_MNT
#   host_src_start            boot the source QEMU (QMP $SRC_QMP); SRC_PID
#   host_dst_start            a destination QEMU with -incoming tcp:...:$MIG_PORT
#                             and its disks in $OTHER; DST_PID
#   host_last_gen             the last generation flushed, either console
#   host_wait_gen N SECS      until generation N was flushed (a hang guard)
#   host_stop_guest           STOP, wait for the guest's verdict
#   host_qemu_kill            end both QEMUs

SIZE_MB=${SIZE_MB:-32}
NBLK=$((SIZE_MB * 256))
SRC_LOG=$TEST_DIR/src-console.log
DST_LOG=$TEST_DIR/dst-console.log
SRC_QMP=$TEST_DIR/src.qmp
DST_QMP=$TEST_DIR/dst.qmp
SRC_PID=
DST_PID=
MIG_PORT=

host_guest_prepare() {
	guest_prepare_or_skip
	command -v qemu-img >/dev/null || fail "qemu-img is not installed (tests/deps.sh)"
	guest_gens_initrd "$TEST_DIR" "$NBLK" "vda vdb" vdb vdc || fail "cannot build the initramfs"
	pattern_blocks hst 0 0 "$NBLK" >"$TEST_MNT/disk.raw"
	pattern_blocks hst 0 0 $((NBLK / 2)) >"$TEST_DIR/fill.raw"
	truncate -s "${SIZE_MB}M" "$TEST_DIR/fill.raw"
	qemu-img convert -q -f raw -O qcow2 "$TEST_DIR/fill.raw" "$TEST_MNT/disk.qcow2"
	rm -f "$TEST_DIR/fill.raw"
	truncate -s 1M "$TEST_DIR/ctl.img"
}

# host_drives DIR: the -drive values of the guest's disks in DIR
host_drives() {
	printf '%s\n' \
		"file=$1/disk.raw,if=virtio,format=raw,cache=none,aio=threads" \
		"file=$1/disk.qcow2,if=virtio,format=qcow2,cache=writeback" \
		"file=$TEST_DIR/ctl.img,if=virtio,format=raw,cache=none,aio=threads,readonly=on"
}

host_src_start() {
	local d=()
	mapfile -t d < <(host_drives "$TEST_MNT")
	GUEST_QEMU_ARGS=(-name vm1)
	guest_start "$SRC_LOG" "$SRC_QMP" "${d[@]}"
	SRC_PID=$GUEST_PID
	guest_wait_line "$SRC_LOG" 'GUEST: ready' 90 || { host_console_tail; fail "the guest did not come up"; }
	GUEST_PID=
}

HOST_PORT_TRY=0
host_dst_start() {
	local d=()
	# a new port each time: the last one may linger in TIME_WAIT
	HOST_PORT_TRY=$((HOST_PORT_TRY + 1))
	MIG_PORT=$(free_ports 24000 28000 1 $((HOST_PORT_TRY * 977))) ||
		fail "no free port for the migration"
	mapfile -t d < <(host_drives "$OTHER")
	GUEST_QEMU_ARGS=(-name vm1 -incoming "tcp:127.0.0.1:$MIG_PORT")
	: >"$DST_LOG"
	guest_start "$DST_LOG" "$DST_QMP" "${d[@]}"
	DST_PID=$GUEST_PID
	GUEST_PID=
	# QEMU listens for the migration before its monitor answers; a probe of
	# the port itself would be taken for the migration stream
	wait_until 60 host_dst_incoming ||
		fail "the destination QEMU does not wait for the migration: $(tail -n 3 "$DST_LOG")"
}

host_dst_incoming() {
	host_qmp "$DST_QMP" '{"execute":"query-status"}' | grep -q '"inmigrate"'
}

host_last_gen() {
	{ cat "$SRC_LOG" "$DST_LOG" 2>/dev/null || true; } | sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' | tail -n 1
}

host_gen_at_least() {
	local g
	g=$(host_last_gen)
	[ -n "$g" ] && [ "$g" -ge "$1" ]
}

host_dst_gen_at_least() {	# the destination's console shows generation >= N
	local g
	g=$(sed -n 's/^GEN \([0-9][0-9]*\) flushed.*/\1/p' "$DST_LOG" 2>/dev/null | tail -n 1)
	[ -n "$g" ] && [ "$g" -ge "$1" ]
}

host_wait_gen() {
	wait_until "$2" host_gen_at_least "$1"
}

host_console_tail() {
	local f
	for f in "$SRC_LOG" "$DST_LOG"; do
		[ -s "$f" ] || continue
		say "    ${f##*/}:"
		grep -aE 'GUEST:|^(GEN|VERIFY)|I/O error|Kernel panic|qemu' "$f" | tail -n "${1:-6}" | sed 's/^/    | /'
	done
}

# host_qmp SOCKET JSON...: send QMP commands with socat, print the replies
host_qmp() {
	local sock=$1 c
	shift
	{
		echo '{"execute":"qmp_capabilities"}'
		for c in "$@"; do echo "$c"; done
		sleep 0.5
	} | socat - "UNIX-CONNECT:$sock" 2>/dev/null | grep -v '"QMP"' | grep -v '^{"return": {}}$' || true
}

host_pid_wait() {	# host_pid_wait PID SECS: until the process has exited
	wait_until "$2" eval '! kill -0 '"$1"' 2>/dev/null'
}

host_qemu_kill() {
	local p
	for p in $SRC_PID $DST_PID; do
		kill "$p" 2>/dev/null
	done
	for p in $SRC_PID $DST_PID; do
		host_pid_wait "$p" 10 || kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	SRC_PID= DST_PID=
	return 0
}

host_stop_guest() {
	printf 'STOP' | dd of="$TEST_DIR/ctl.img" conv=notrunc,fsync status=none
}

