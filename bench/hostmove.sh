#!/bin/sh
# bench/hostmove.sh: moving a running VM and its disk to another host, two ways, on the same
# guest in one run:
#   (a) relocfs: migrate the disk into the other host's directory over sshfs, then
#       cutover --hook qmp-migrate (QEMU moves memory, relocfs finishes the copy at QEMU's
#       switch-over point);
#   (b) what libvirt does for --copy-storage-all: the destination QEMU (-incoming defer)
#       exports its disk over NBD (nbd-server-start, nbd-server-add), the source QEMU mirrors
#       into it (drive-mirror, sync=full), and once the mirror is ready QEMU migrates with
#       pause-before-switchover; at the switch-over the mirror is completed (block-job-cancel
#       of a ready job) and the migration continued.
# For each: total time (copy start to the guest running at the destination), the guest's
# downtime (QEMU's query-migrate "downtime"; for (a) relocfs's hold is inside it and given
# too), and the guest's 4 KiB O_DIRECT write IOPS while the disk is copied, against the same
# guest idle before.  Then what (b) cannot do: (a)'s copy is interrupted by killing the relocfs
# worker mid-copy and carries on from its last checkpoint; (b)'s mirror, once interrupted,
# starts again from byte 0 (its state lives in the QEMU process).
#
# The "other host" is a directory served by a private sshd on a loopback port (keys made
# here), mounted with sshfs for (a); (b) sends its data over NBD on loopback.  Both
# destination QEMUs run on this machine.  Under TCG the guest's IOPS are those of an emulated
# CPU: compare the two columns, not the numbers with a real VM's.
#
#   HOSTMOVE_DISK_MIB   the guest's disk, all data (default 1024: the kill test needs more
#                       than one copier checkpoint, 256 MiB)
#   HOSTMOVE_IDLE_S     seconds of idle IOPS measured before each copy (default 15)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -eu
. "$(dirname "$0")/lib.sh"
. "$BENCH_ROOT/tests/vm/guest.sh"

DISK_MIB=${HOSTMOVE_DISK_MIB:-1024}
IDLE_S=${HOSTMOVE_IDLE_S:-15}
check_prereqs
for c in sshfs socat qemu-system-x86_64 qemu-img; do
	command -v $c >/dev/null || die "$c is not installed (tests/deps.sh)"
done
[ -x /usr/sbin/sshd ] || die "openssh-server is not installed (tests/deps.sh)"

W=$BENCH_DIR/hostmove
OUT=$(result_file hostmove)
FACTS=$(machine_facts)
SSHD_PID= SRC_PID= DST_PID= QMPS=()
cleanup() {
	local rc=$?
	set +e
	if [ "$rc" != 0 ]; then
		for f in "$W"/*-src.log "$W"/*-dst.log; do
			[ -s "$f" ] && { echo "== $f"; tail -n 5 "$f"; } >&2
		done
	fi
	for p in $SRC_PID $DST_PID; do kill "$p" 2>/dev/null; done
	for p in $SRC_PID $DST_PID; do wait "$p" 2>/dev/null; done
	for p in "${EV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	unmount_relocfs
	grep -q " $W/dest fuse.sshfs" /proc/mounts && fusermount3 -u "$W/dest"
	if [ -n "$SSHD_PID" ]; then
		for p in $(ps -o pid= --ppid "$SSHD_PID"); do kill "$p"; done
		kill "$SSHD_PID"
		wait "$SSHD_PID" 2>/dev/null
	fi
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE	# a QMP peer gone is an error below, not a silent death
trap 'echo "bench: hostmove.sh: a command failed at line $LINENO" >&2' ERR
rm -rf "$W"
mkdir -p "$W/src" "$W/mnt" "$W/other" "$W/dest" "$W/plain" "$W/other-b" "$W/sshd"

# ---- the other host: sshd on loopback, its directory over sshfs ----
ssh-keygen -q -t ed25519 -N '' -f "$W/sshd/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/sshd/id"
cp "$W/sshd/id.pub" "$W/sshd/authorized_keys"
mkdir -p /run/sshd
SSHD_PORT=$((21000 + $$ % 9000))
cat >"$W/sshd/config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $W/sshd/host_key
AuthorizedKeysFile $W/sshd/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
/usr/sbin/sshd -D -e -f "$W/sshd/config" 2>"$W/sshd/log" &
SSHD_PID=$!
i=0
until grep -qs "Server listening" "$W/sshd/log"; do
	i=$((i + 1)); [ $i -lt 100 ] || die "sshd did not start: $(cat "$W/sshd/log")"; sleep 0.1
done
sshfs -o "IdentityFile=$W/sshd/id,Port=$SSHD_PORT,BatchMode=yes,StrictHostKeyChecking=no" \
	-o UserKnownHostsFile=/dev/null,LogLevel=ERROR,ServerAliveInterval=2,ServerAliveCountMax=3 \
	"root@127.0.0.1:$W/other" "$W/dest"

# ---- the guest: writes 4 KiB O_DIRECT blocks to vda and counts them ----
guest_prepare || die "no guest kernel (qemu or Debian's kernel cannot be had)"
cat >"$W/script" <<'EOF'
dd if=/dev/urandom of=/tmp/p bs=4096 count=64 2>/dev/null
i=0; n=0
while :; do
	dd if=/tmp/p of=/dev/vda bs=4096 count=64 seek=$(( (i % 1024) * 64 )) oflag=direct conv=notrunc 2>/dev/null || echo "WERR"
	i=$((i + 1)); n=$((n + 64))
	echo "W $(cut -d' ' -f1 /proc/uptime) $n"
	if [ $((i % 8)) = 0 ]; then
		dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | grep -q STOP && break
	fi
done
echo "GUEST: done"
EOF
GUEST_INITRD=$W/initrd.gz
guest_initrd "$W/script" "$GUEST_INITRD"
log "filling a ${DISK_MIB} MiB disk"
make_image "$W/plain/disk.raw" "$DISK_MIB" 0
truncate -s 1M "$W/ctl.img"

# qemu_start LOG QMP DISKDIR [ARGS...]: PID in QEMU_PID
qemu_start() {
	local log=$1 qmp=$2 dir=$3
	shift 3
	GUEST_QEMU_ARGS=(-name vm1 "$@")
	guest_start "$log" "$qmp" "file=$dir/disk.raw,if=virtio,format=raw,cache=none,aio=threads" \
		"file=$W/ctl.img,if=virtio,format=raw,cache=none,aio=threads,readonly=on"
	QEMU_PID=$GUEST_PID
	GUEST_PID=
}

# a QMP connection of our own (socat between two FIFOs): qmp_open NAME SOCKET, then
# qmp NAME JSON (prints the reply line; events go to a file), qmp_event NAME PATTERN (waits
# for an event line matching the grep -E PATTERN), qmp_close NAME
declare -A QIN QOUT QPID
qmp_open() {
	local i=0 fi fo
	until [ -S "$2" ]; do i=$((i + 1)); [ $i -lt 300 ] || die "no QMP socket $2"; sleep 0.1; done
	rm -f "$W/q-$1.in" "$W/q-$1.out" "$W/events-$1"
	mkfifo "$W/q-$1.in" "$W/q-$1.out"
	socat - "UNIX-CONNECT:$2" <"$W/q-$1.in" >"$W/q-$1.out" &
	QPID[$1]=$!
	exec {fi}>"$W/q-$1.in"
	exec {fo}<"$W/q-$1.out"
	QIN[$1]=$fi QOUT[$1]=$fo
	read -r -t 60 -u "$fo" _greeting || die "no QMP greeting on $2"
	qmp "$1" '{"execute":"qmp_capabilities"}' >/dev/null
}
qmp() {
	local line
	echo "$2" 2>/dev/null >&"${QIN[$1]}" || die "QMP $1 is gone (QEMU exited?) before $2"
	while read -r -t 600 -u "${QOUT[$1]}" line; do
		case $line in
		*'"event"'*) echo "$line" >>"$W/events-$1" ;;
		*'"return"'*|*'"error"'*) echo "$line"; return 0 ;;
		esac
	done
	die "no reply from QMP $1 to $2"
}
qmp_event() {
	local line
	if [ -s "$W/events-$1" ] && grep -Eq "$2" "$W/events-$1"; then
		: >"$W/events-$1"
		return 0
	fi
	while read -r -t 900 -u "${QOUT[$1]}" line; do
		echo "$line" | grep -Eq "$2" && return 0
	done
	die "QMP $1: no event matching $2"
}
qmp_close() {
	exec {QIN[$1]}>&-
	exec {QOUT[$1]}<&-
	wait "${QPID[$1]}" 2>/dev/null || true
	rm -f "$W/q-$1.in" "$W/q-$1.out" "$W/events-$1"
}

# QEMU's events with their timestamps, on a second QMP socket of each QEMU:
# ev_watch NAME SOCKET (in the background, into $W/ev-NAME), then after the
# move ev_times NAME prints "usec EVENT [status]" lines, and timeline SRC DST
# the steps from the guest's stop at the source to its resume there
EV_PIDS=()
ev_watch() {
	local i=0 fd
	until [ -S "$2" ]; do i=$((i + 1)); [ $i -lt 300 ] || die "no QMP socket $2"; sleep 0.1; done
	rm -f "$W/ev-$1.in"
	mkfifo "$W/ev-$1.in"
	socat -t 3600 - "UNIX-CONNECT:$2" <"$W/ev-$1.in" >"$W/ev-$1" 2>/dev/null &
	EV_PIDS+=($!)
	exec {fd}>"$W/ev-$1.in"
	echo '{"execute":"qmp_capabilities"}' >&"$fd"
	# fd stays open to the end: QEMU would drop a connection whose input ended
}
ev_times() {
	grep '"event"' "$W/ev-$1" | jq -r '"\(.timestamp.seconds * 1000000 + .timestamp.microseconds) \(.event) \(.data.status // "")"'
}
# timeline SRC DST: stop, pre-switchover, completed (source), resume (destination), in ms
# from the stop; "-" for a step not seen
timeline() {
	local stop pre done resume
	stop=$(ev_times "$1" | awk '$2 == "STOP" { print $1; exit }')
	pre=$(ev_times "$1" | awk '$3 == "pre-switchover" { print $1; exit }')
	done=$(ev_times "$1" | awk '$3 == "completed" { print $1; exit }')
	resume=$(ev_times "$2" | awk '$2 == "RESUME" { print $1; exit }')
	[ -n "$stop" ] || { echo "- - -"; return; }
	for t in "$pre" "$done" "$resume"; do
		if [ -n "$t" ]; then awk -v a="$stop" -v b="$t" 'BEGIN { printf "%.1f ", (b - a) / 1000 }'
		else printf -- '- '; fi
	done
	echo
}

# guest_point LOG: "uptime count" of the guest's last W line
guest_point() {
	grep -a '^W ' "$1" | tail -n 1 | awk '{print $2, $3}'
}
# iops P0 P1: blocks per guest second between two points
iops() {
	echo "$1 $2" | awk '{ if ($3 - $1 > 0) printf "%.0f", ($4 - $2) / ($3 - $1); else print "n/a" }'
}
idle_iops() {	# idle_iops LOG
	local p0 p1
	p0=$(guest_point "$1")
	sleep "$IDLE_S"
	p1=$(guest_point "$1")
	iops "$p0" "$p1"
}
wait_guest_writes() {	# the guest has written at least one batch
	local i=0
	until grep -aq '^W ' "$1"; do
		i=$((i + 1)); [ $i -lt 1200 ] || die "the guest does not write: $(tail -n 5 "$1")"; sleep 0.1
	done
}
mig_port() { echo $((41000 + ($$ + $1) % 9000)); }
# runs_on LOG PID: "yes" once the guest, migrated to the QEMU PID logging to
# LOG, has written three more batches there (up to 120 s); otherwise what ended it
runs_on() {
	local n0 i=0
	n0=$(grep -ac '^W ' "$1" || true)
	while [ "$(grep -ac '^W ' "$1" || true)" -lt $((n0 + 3)) ]; do
		if ! kill -0 "$2" 2>/dev/null || grep -aq 'Kernel panic' "$1"; then
			echo "no: $(grep -a -m1 -E 'Kernel panic|BUG:|Oops' "$1" | tr -d '\r' | cut -c1-70)"
			return
		fi
		i=$((i + 1)); [ $i -lt 1200 ] || { echo "no: no write in 120 s"; return; }
		sleep 0.1
	done
	echo yes
}

# ======================= (a) relocfs + qmp-migrate ==========================
log "(a) relocfs: boot the guest on the mount"
cp --sparse=always "$W/plain/disk.raw" "$W/src/disk.raw"
mount_relocfs "$W/src" "$W/mnt"
qemu_start "$W/a-src.log" "$W/a-src.qmp" "$W/mnt" -qmp "unix:$W/a-src-ev.qmp,server=on,wait=off"
SRC_PID=$QEMU_PID
ev_watch a-src "$W/a-src-ev.qmp"
wait_guest_writes "$W/a-src.log"
A_IDLE=$(idle_iops "$W/a-src.log")
log "(a) idle: $A_IDLE IOPS; migrate to the other host over sshfs"
t0=$(now)
p0=$(guest_point "$W/a-src.log")
ctl migrate --to "$W/dest" disk.raw >"$W/a-mig.out" 2>&1 || die "(a) migrate: $(cat "$W/a-mig.out")"
ctl wait --timeout 1800 >/dev/null 2>&1 || die "(a) wait failed: $(ctl status)"
t_ready=$(now)
p1=$(guest_point "$W/a-src.log")
A_COPY=$(iops "$p0" "$p1")
A_COPY_S=$(elapsed "$t0" "$t_ready")
log "(a) copy done in $A_COPY_S s, guest $A_COPY IOPS meanwhile; hand-off"
PORT=$(mig_port 1)
qemu_start "$W/a-dst.log" "$W/a-dst.qmp" "$W/other" -incoming "tcp:127.0.0.1:$PORT" \
	-qmp "unix:$W/a-dst-ev.qmp,server=on,wait=off"
DST_PID=$QEMU_PID
ev_watch a-dst "$W/a-dst-ev.qmp"
i=0
until echo '{"execute":"qmp_capabilities"}{"execute":"query-status"}' |
	socat - "UNIX-CONNECT:$W/a-dst.qmp" 2>/dev/null | grep -q inmigrate; do
	i=$((i + 1)); [ $i -lt 600 ] || die "(a) destination QEMU not ready"; sleep 0.1
done
ctl cutover --hook "qmp-migrate:$W/a-src.qmp@tcp:127.0.0.1:$PORT" --timeout 600 >"$W/a-cut.out" 2>&1 ||
	die "(a) cutover: $(cat "$W/a-cut.out")"
t_end=$(now)
A_TOTAL=$(elapsed "$t0" "$t_end")
A_DOWN=$(sed -n 's/.*qemu downtime \([0-9]*\) ms.*/\1/p' "$W/a-cut.out")
A_HOLD=$(sed -n 's/.*relocfs held I\/O \([0-9.]*\) ms.*/\1/p' "$W/a-cut.out")
read -r A_PRE A_DONE A_RESUME <<<"$(timeline a-src a-dst)"
A_RELOCFS=$(sed -n "s/.*(from QEMU's switch-over point: \(.*after it was let go\)).*/\1/p" "$W/a-cut.out")
log "(a) $(cat "$W/a-cut.out")"
A_RUNS=$(runs_on "$W/a-dst.log" "$DST_PID")
log "(a) the guest runs on at the destination: $A_RUNS"
printf 'STOP' | dd of="$W/ctl.img" conv=notrunc,fsync status=none
for p in $SRC_PID $DST_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
SRC_PID= DST_PID=
truncate -s 0 "$W/ctl.img"; truncate -s 1M "$W/ctl.img"
unmount_relocfs

# ======================= (b) NBD mirror + migrate (libvirt's way) ==========
log "(b) NBD mirror: boot the same guest on a plain directory"
truncate -s "${DISK_MIB}M" "$W/other-b/disk.raw"
qemu_start "$W/b-src.log" "$W/b-src.qmp" "$W/plain" -qmp "unix:$W/b-src-ev.qmp,server=on,wait=off"
SRC_PID=$QEMU_PID
ev_watch b-src "$W/b-src-ev.qmp"
wait_guest_writes "$W/b-src.log"
B_IDLE=$(idle_iops "$W/b-src.log")
PORT=$(mig_port 2)
NBD_PORT=$(mig_port 3)
qemu_start "$W/b-dst.log" "$W/b-dst.qmp" "$W/other-b" -incoming defer \
	-qmp "unix:$W/b-dst-ev.qmp,server=on,wait=off"
DST_PID=$QEMU_PID
ev_watch b-dst "$W/b-dst-ev.qmp"
qmp_open dst "$W/b-dst.qmp"
qmp_open src "$W/b-src.qmp"
log "(b) idle: $B_IDLE IOPS; nbd-server-start on the destination, drive-mirror from the source"
t0=$(now)
p0=$(guest_point "$W/b-src.log")
qmp dst "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"$NBD_PORT\"}}}}" >/dev/null
qmp dst '{"execute":"nbd-server-add","arguments":{"device":"virtio0","writable":true}}' | grep -q return ||
	die "(b) nbd-server-add failed"
qmp dst "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$PORT\"}}" >/dev/null
qmp src "{\"execute\":\"drive-mirror\",\"arguments\":{\"device\":\"virtio0\",\"job-id\":\"m0\",\"target\":\"nbd:127.0.0.1:$NBD_PORT:exportname=virtio0\",\"sync\":\"full\",\"mode\":\"existing\",\"format\":\"raw\"}}" |
	grep -q return || die "(b) drive-mirror failed"
qmp_event src '"BLOCK_JOB_READY"'
t_ready=$(now)
p1=$(guest_point "$W/b-src.log")
B_COPY=$(iops "$p0" "$p1")
B_COPY_S=$(elapsed "$t0" "$t_ready")
log "(b) mirror ready in $B_COPY_S s, guest $B_COPY IOPS meanwhile; migrate"
qmp src '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true},{"capability":"pause-before-switchover","state":true}]}}' >/dev/null
qmp src "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$PORT\"}}" | grep -q return ||
	die "(b) migrate failed"
qmp_event src '"status": ?"pre-switchover"'
qmp src '{"execute":"block-job-cancel","arguments":{"device":"m0"}}' >/dev/null
qmp_event src '"BLOCK_JOB_COMPLETED"'
qmp src '{"execute":"migrate-continue","arguments":{"state":"pre-switchover"}}' >/dev/null
qmp_event src '"status": ?"completed"'
t_end=$(now)
B_TOTAL=$(elapsed "$t0" "$t_end")
# QEMU says "completed" a moment before it has the times (0 until then)
i=0
while :; do
	qm=$(qmp src '{"execute":"query-migrate"}')
	B_DOWN=$(echo "$qm" | sed -n 's/.*"downtime": *\([0-9]*\).*/\1/p')
	echo "$qm" | grep -Eq '"total-time": *[1-9]' && break
	i=$((i + 1)); [ $i -lt 100 ] || die "(b) query-migrate gives no times: $qm"
	sleep 0.05
done
log "(b) migrated: total $B_TOTAL s, downtime $B_DOWN ms"
B_RUNS=$(runs_on "$W/b-dst.log" "$DST_PID")
log "(b) the guest runs on at the destination: $B_RUNS"
case $B_RUNS in
yes) qmp dst '{"execute":"nbd-server-stop"}' >/dev/null ;;
*) cp "$W/b-dst.log" "$OUT.b-dst.log" ;;	# kept beside the result, for the record
esac
qmp_close src
qmp_close dst
printf 'STOP' | dd of="$W/ctl.img" conv=notrunc,fsync status=none
for p in $SRC_PID $DST_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
SRC_PID= DST_PID=
truncate -s 0 "$W/ctl.img"; truncate -s 1M "$W/ctl.img"

# ============ interrupted copies: (a) resumes, (b) starts again ===============
log "(a) interrupted: the relocfs worker killed mid-copy"
rm -rf "$W/src" "$W/other"/* "$W/mnt"
mkdir -p "$W/src" "$W/mnt"
cp --sparse=always "$W/plain/disk.raw" "$W/src/disk.raw"
mount_relocfs "$W/src" "$W/mnt"
qemu_start "$W/k-src.log" "$W/k-src.qmp" "$W/mnt"
SRC_PID=$QEMU_PID
wait_guest_writes "$W/k-src.log"
ctl migrate --to "$W/dest" --rate 48M disk.raw >"$W/k-mig.out" 2>&1 ||
	die "(a) migrate: $(cat "$W/k-mig.out")"
copied() { ctl status --json | jq -r '.files[0].bytes_copied'; }
i=0
until [ "$(copied)" -ge $((320 << 20)) ]; do
	i=$((i + 1)); [ $i -lt 6000 ] || die "(a) the copy did not pass 320 MiB"; sleep 0.1
done
K_AT=$(( $(copied) >> 20 ))
K_WORKER=$(ctl status --json | jq -r '.worker_pid')
kill -9 "$K_WORKER"
i=0
until w=$(ctl status --json 2>/dev/null | jq -r '.worker_pid // 0') && [ "$w" != 0 ] && [ "$w" != "$K_WORKER" ]; do
	i=$((i + 1)); [ $i -lt 600 ] || die "(a) no new worker"; sleep 0.1
done
K_FROM=$(( $(copied) >> 20 ))
ctl wait --timeout 1800 >/dev/null 2>&1 || die "(a) the copy did not finish after the kill: $(ctl status)"
ctl verify >"$W/k-verify.out" 2>&1 || die "(a) verify after the kill: $(cat "$W/k-verify.out")"
K_GUEST_ALIVE=no
kill -0 "$SRC_PID" 2>/dev/null && ! grep -aq WERR "$W/k-src.log" && K_GUEST_ALIVE=yes
ctl abort >/dev/null
printf 'STOP' | dd of="$W/ctl.img" conv=notrunc,fsync status=none
kill "$SRC_PID"; wait "$SRC_PID" 2>/dev/null || true; SRC_PID=
truncate -s 0 "$W/ctl.img"; truncate -s 1M "$W/ctl.img"
unmount_relocfs

log "(b) interrupted: the mirror cancelled mid-copy, then started again"
truncate -s 0 "$W/other-b/disk.raw"; truncate -s "${DISK_MIB}M" "$W/other-b/disk.raw"
qemu_start "$W/j-src.log" "$W/j-src.qmp" "$W/plain"
SRC_PID=$QEMU_PID
NBD_PORT=$(mig_port 4)
qemu_start "$W/j-dst.log" "$W/j-dst.qmp" "$W/other-b" -incoming defer
DST_PID=$QEMU_PID
qmp_open dst "$W/j-dst.qmp"
qmp_open src "$W/j-src.qmp"
qmp dst "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"127.0.0.1\",\"port\":\"$NBD_PORT\"}}}}" >/dev/null
qmp dst '{"execute":"nbd-server-add","arguments":{"device":"virtio0","writable":true}}' >/dev/null
mirror='{"execute":"drive-mirror","arguments":{"device":"virtio0","job-id":"m1","target":"nbd:127.0.0.1:'$NBD_PORT':exportname=virtio0","sync":"full","mode":"existing","format":"raw","speed":50331648}}'
qmp src "$mirror" >/dev/null
offset() { qmp src '{"execute":"query-block-jobs"}' | sed -n 's/.*"offset": *\([0-9]*\).*/\1/p'; }
i=0
until o=$(offset) && [ -n "$o" ] && [ "$o" -ge $((320 << 20)) ]; do
	i=$((i + 1)); [ $i -lt 6000 ] || die "(b) the mirror did not pass 320 MiB"; sleep 0.1
done
J_AT=$(( $(offset) >> 20 ))
qmp src '{"execute":"block-job-cancel","arguments":{"device":"m1","force":true}}' >/dev/null
qmp_event src '"BLOCK_JOB_CANCELLED"'
qmp src "$mirror" >/dev/null
J_FROM=$(( $(offset) >> 20 ))
qmp src '{"execute":"block-job-cancel","arguments":{"device":"m1","force":true}}' >/dev/null
qmp_close src
qmp_close dst
read -r B_PRE B_DONE B_RESUME <<<"$(timeline b-src b-dst)"
printf 'STOP' | dd of="$W/ctl.img" conv=notrunc,fsync status=none
for p in $SRC_PID $DST_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
SRC_PID= DST_PID=

# ================================ report ======================================
A_RATIO=$(ratio "$A_COPY" "$B_COPY")
D_RATIO=$(ratio "$A_DOWN" "$B_DOWN")
A_REL=$(ratio "$A_COPY" "$A_IDLE")
B_REL=$(ratio "$B_COPY" "$B_IDLE")
row() { printf '%-44s %12s %12s %9s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
{
	echo "relocfs bench: hostmove (a VM and its ${DISK_MIB} MiB disk moved to another host)"
	echo
	echo "$FACTS"
	echo "loadavg:     $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
	echo
	echo "guest: TCG, 256 MiB, one raw disk (cache=none, aio=threads) written 4 KiB O_DIRECT"
	echo "       in batches of 64 by busybox dd, as fast as the emulated CPU goes"
	echo "(a) relocfs, copy over sshfs (ssh, encrypted) to a local sshd, cutover --hook qmp-migrate;"
	echo "    the guest's disk is on the relocfs mount from the start (idle too)"
	echo "(b) destination QEMU -incoming defer + nbd-server-add, drive-mirror sync=full over"
	echo "    plain TCP, migrate with pause-before-switchover, block-job-cancel at the"
	echo "    switch-over; the guest's disk is on the plain directory"
	echo "Both \"hosts\" share this machine's 2 CPUs (and sshd's encryption, which a second"
	echo "host would do on its own CPUs); other processes ran meanwhile (loadavg above)."
	echo
	printf '%-44s %12s %12s %9s\n' "" "(a) relocfs" "(b) nbd" "(a)/(b)"
	row "total time, copy start to running there (s)" "$A_TOTAL" "$B_TOTAL"
	row "copy until ready (s)" "$A_COPY_S" "$B_COPY_S"
	row "guest downtime, query-migrate (ms)" "$A_DOWN" "$B_DOWN"
	printf '%-44s %12s %12s %9s\n' "  of which relocfs held I/O (ms)" "$A_HOLD" "-" ""
	echo "the pause, from QEMU's events (ms after the guest's STOP at the source):"
	row "  pre-switchover (drained, flushed)" "$A_PRE" "$B_PRE"
	row "  completed at the source" "$A_DONE" "$B_DONE"
	row "  RESUME at the destination" "$A_RESUME" "$B_RESUME"
	echo "  (a) relocfs, from the switch-over point: $A_RELOCFS"
	printf '%-44s %12s %12s\n' "the guest runs on at the destination" "${A_RUNS%%:*}" "${B_RUNS%%:*}"
	row "guest write IOPS idle, before the copy" "$A_IDLE" "$B_IDLE"
	row "guest write IOPS during the copy" "$A_COPY" "$B_COPY"
	row "  the same / idle in the same setup" "$A_REL" "$B_REL"
	echo
	[ "$A_RUNS" = yes ] || echo "(a) at the destination: $A_RUNS"
	[ "$B_RUNS" = yes ] || echo "(b) at the destination: $B_RUNS (console: $(basename "$OUT").b-dst.log)"
	echo
	echo "interrupted mid-copy:"
	echo "  (a) relocfs worker killed at $K_AT MiB copied; the next worker's first status read"
	echo "      $K_FROM MiB (it resumes at the last checkpoint, one every 256 MiB), finished and"
	echo "      verified; guest unaffected: $K_GUEST_ALIVE"
	echo "  (b) mirror cancelled at $J_AT MiB; a new drive-mirror starts at $J_FROM MiB: the"
	echo "      copy's state lives in the source QEMU, and dies with it"
	echo
	echo "targets"
	echo "  downtime (a) <= (b):               $A_DOWN ms vs $B_DOWN ms ($D_RATIO)  $(verdict "$D_RATIO" '<=' 1)"
	echo "  IOPS during the copy (a) >= (b):   $A_COPY vs $B_COPY ($A_RATIO)  $(verdict "$A_RATIO" '>=' 1)"
	echo "  (a) resumes after a kill:          from $K_FROM MiB, not 0  $( [ "$K_FROM" -gt 0 ] && echo PASS || echo MISS)"
} >"$OUT"
cat "$OUT"
