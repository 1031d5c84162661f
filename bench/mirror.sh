#!/bin/sh
# bench/mirror.sh: fio on the backing directory (native) and through relocfs mounts, one per
# transport (/dev/fuse and FUSE over io_uring where the kernel has it), all over the same image
# (one inode, hard-linked into each mount's source directory), in one run.  Caches dropped
# before every job.  Ratios are mount / native bandwidth, per transport; cpu_us is the relocfs
# worker's user+sys CPU per request (fio's I/O count), so the transports' costs compare.
#
#   MIRROR_SIZE_MIB  test file size (default 2048)
#   MIRROR_RUNTIME   seconds per fio run (default 5)
#   MIRROR_REPS      rounds per job, each in ABBA order over the targets (default 2)
#   MIRROR_OPTS      extra relocfs -o options for every mount
#   MIRROR_TRANSPORTS  which mounts (default: "dev uring uring-nowb uring-poll", uring only where
#                    offered): a transport with relocfs's defaults (the writeback cache on),
#                    -nowb for a mount of it with -o nowriteback, -poll for one with
#                    -o poll=MIRROR_POLL_US (default 100)
#   MIRROR_JOBS      only the jobs whose name matches this extended regex (default: all)
#   MIRROR_RTT       1 (default): where a 4 KiB direct read at QD1 spends its time, from the
#                    same job natively and through each transport over a tmpfs source (0: skip)
#   MIRROR_FAST      1 (default): 4 KiB random I/O (direct at QD1 and QD16, buffered reads) natively and through
#                    each transport on ext4 over a loop device on tmpfs, storage that is not
#                    the limit: what each transport serves when its own CPU is (0: skip)
set -eu
. "$(dirname "$0")/lib.sh"

SIZE=${MIRROR_SIZE_MIB:-2048}
RUNTIME=${MIRROR_RUNTIME:-5}
REPS=${MIRROR_REPS:-2}
check_prereqs

TRANSPORTS=${MIRROR_TRANSPORTS:-dev uring uring-nowb uring-poll}
POLL_US=${MIRROR_POLL_US:-100}
# base_of T: the transport of mount T; opts_of T: its relocfs options
base_of() { t=${1%-nowb}; echo "${t%-poll}"; }
opts_of() {
	printf '%s\n' -o "transport=$(base_of "$1")"
	case $1 in *-nowb) printf '%s\n' -o nowriteback ;; *-poll) printf '%s\n' -o "poll=$POLL_US" ;; esac
}
uring_was=$(sh "$(dirname "$0")/../tests/uring_param.sh" on)
if [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" != Y ]; then
	TRANSPORTS=$(echo "$TRANSPORTS" | tr ' ' '\n' | grep -v '^uring' | tr '\n' ' ')
fi

W=$BENCH_DIR/mirror
OUT=$(result_file mirror)
RAW=$W/raw
MOUNTS=
cleanup() {
	for t in $MOUNTS; do
		fusermount3 -u "$W/mnt-$t" 2>/dev/null || fusermount3 -uz "$W/mnt-$t" 2>/dev/null || true
	done
	if [ -d "$W/tmpfs" ]; then
		for m in "$W"/tmpfs/mnt-*; do
			[ -d "$m" ] && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true; }
		done
		# lazily: the daemons may still hold their source dirs open a moment
		umount "$W/tmpfs" 2>/dev/null || umount -l "$W/tmpfs" 2>/dev/null || true
	fi
	if [ -d "$W/fast" ]; then
		for m in "$W"/fast/fs/mnt-*; do
			[ -d "$m" ] && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true; }
		done
		umount "$W/fast/fs" 2>/dev/null || umount -l "$W/fast/fs" 2>/dev/null || true
		[ -z "${FAST_LOOP:-}" ] || losetup -d "$FAST_LOOP" 2>/dev/null || true
		umount "$W/fast" 2>/dev/null || umount -l "$W/fast" 2>/dev/null || true
	fi
	sh "$(dirname "$0")/../tests/uring_param.sh" put "$uring_was"
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"
mkdir -p "$W/src" "$RAW"
: >"$RAW/ratios"
log "mirror: writing a ${SIZE} MiB test file"
make_image "$W/src/img" "$SIZE" 0

opts=${MIRROR_OPTS:+-o $MIRROR_OPTS}
# worker_of T: the pid of the worker serving the mount of transport T
worker_of() {
	RELOCFS_RUNDIR=$W/run-$1 "$RELOCCTL" -m "$W/mnt-$1" status --json | jq -r .worker_pid
}
for t in $TRANSPORTS; do
	mkdir -p "$W/src-$t" "$W/mnt-$t" "$W/run-$t"
	ln "$W/src/img" "$W/src-$t/img"
	# shellcheck disable=SC2086
	RELOCFS_RUNDIR=$W/run-$t "$RELOCFS" $(opts_of "$t") $opts "$W/src-$t" "$W/mnt-$t" \
		2>"$W/run-$t/relocfs.log" || die "relocfs ($t) failed to start: $(cat "$W/run-$t/relocfs.log")"
	MOUNTS="$MOUNTS $t"
	# the transport is known once the kernel's INIT is answered
	i=0
	while got=$(RELOCFS_RUNDIR=$W/run-$t "$RELOCCTL" -m "$W/mnt-$t" status --json | jq -r .transport) &&
	      [ -z "$got" ] && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$got" = "$(base_of "$t")" ] || die "the $t mount is served over '$got'"
	log "relocfs worker $(worker_of "$t") serves $W/mnt-$t over $t"
done
TARGETS="native$(for t in $TRANSPORTS; do printf ' %s' "$t"; done)"

# job table: name rw bs ioengine iodepth direct [fdatasync every N writes]
JOBS="
randread-4k-direct-qd1   randread  4k libaio 1  1
randread-4k-direct-qd16  randread  4k libaio 16 1
randwrite-4k-direct-qd1  randwrite 4k libaio 1  1
randwrite-4k-direct-qd16 randwrite 4k libaio 16 1
seqread-1m-direct-qd1    read      1m libaio 1  1
seqread-1m-direct-qd16   read      1m libaio 16 1
seqwrite-1m-direct-qd1   write     1m libaio 1  1
seqwrite-1m-direct-qd16  write     1m libaio 16 1
randread-4k-buffered     randread  4k psync  1  0
randwrite-4k-buffered    randwrite 4k psync  1  0
seqread-1m-buffered      read      1m psync  1  0
seqwrite-1m-buffered     write     1m psync  1  0
randwrite-4k-buf-sync32  randwrite 4k psync  1  0 32
seqwrite-1m-buf-sync64   write     1m psync  1  0 64
"

# cached_kib: the page cache's size (Cached in /proc/meminfo), KiB
cached_kib() { awk '/^Cached:/ { print $2 }' /proc/meminfo; }

# run_fio NAME TAG FILE rw bs engine depth direct [sync] -> "bw_kib ios"; fio's JSON in
# $RAW/NAME-TAG.json, or NAME-TAGb.json for the second run of a round (ABBA).  sync: an
# fdatasync every that many writes.  With CACHE_OUT set, what the page cache grew by during
# the run (KiB) per MiB the job moved is appended to it.
run_fio() {
	json=$RAW/$1-$2.json
	[ ! -e "$json" ] || json=$RAW/$1-$2b.json
	drop_caches
	d0=$(disk_stat)
	c0=$(cached_kib)
	fio --name="$1" --filename="$3" --size="${SIZE}M" --rw="$4" --bs="$5" \
	    --ioengine="$6" --iodepth="$7" --direct="$8" --numjobs=1 ${9:+--fdatasync=$9} \
	    --time_based --runtime="$RUNTIME" --randrepeat=0 --norandommap \
	    --output-format=json --output="$json" >/dev/null ||
		die "fio $1 on $2 failed"
	[ -z "${DISK_OUT:-}" ] || disk_use "$DISK_OUT" "$d0" "$(disk_stat)"
	case $4 in *read) dir=read ;; *) dir=write ;; esac
	[ -z "${CACHE_OUT:-}" ] ||
		jq -r --arg d "$dir" --argjson c "$(($(cached_kib) - c0))" \
			'.jobs[0][$d].io_bytes / 1048576 | if . > 0 then $c / 1024 / . else 0 end' \
			"$json" >>"$CACHE_OUT"
	jq -r --arg d "$dir" '.jobs[0][$d] | "\(.bw) \(.total_ios)"' "$json"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# iowq_waits PID: how often the io_uring worker threads (iou-wrk-*) of PID
# have slept, summed: each backing I/O io_uring cannot issue without
# blocking is handed to one of them, and its completion wakes the ring
# thread, a hop the inline ones do not make
iowq_waits() {
	local t c n s=0
	for t in /proc/$1/task/*; do
		{ read -r c <"$t/comm"; } 2>/dev/null || continue
		case $c in iou-wrk-*) ;; *) continue ;; esac
		n=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status" 2>/dev/null) || n=0
		s=$((s + ${n:-0}))
	done
	echo "$s"
}
# cpu_stat: "busy total" jiffies of the whole machine (/proc/stat, user to
# steal: guest time is in user already; idle and iowait are not busy)
cpu_stat() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# busy_pct FILE "B0 T0" "B1 T1": append the machine's busy share between the two, in %
busy_pct() {
	echo "$2 $3" | awk '{ t = $4 - $2; print (t > 0 ? 100 * ($3 - $1) / t : 0) }' >>"$1"
}
# The block device under the backing file, as /proc/diskstats names it, if
# it is one.  disk_stat: "requests ms_in_requests ms_weighted now_ms" of it
# (reads and writes; ms_weighted: the time requests were in flight, summed
# over them); disk_use FILE "BEFORE" "AFTER": append "in_flight us_each"
# between the two: the disk's mean queue depth and time per request
DISK=$(findmnt -n -o SOURCE -T "$W/src" 2>/dev/null | sed 's/\[.*//; s#.*/##')
awk -v d="$DISK" '$3 == d { f = 1 } END { exit !f }' /proc/diskstats 2>/dev/null || DISK=
disk_stat() {
	awk -v d="$DISK" -v now="$(date +%s%3N)" \
		'$3 == d { print $4 + $8, $7 + $11, $14, now; f = 1 } END { if (!f) print 0, 0, 0, now }' \
		/proc/diskstats
}
disk_use() {
	echo "$2 $3" | awk '{ n = $5 - $1; t = $8 - $4
		print (t > 0 ? ($7 - $3) / t : 0), (n > 0 ? ($6 - $2) * 1000 / n : 0) }' >>"$1"
}
# per_request FILE BEFORE AFTER IOS: append (AFTER - BEFORE) / IOS, one run's
# figure per request, to FILE
per_request() {
	awk -v a="$2" -v b="$3" -v n="$4" 'BEGIN { d = b - a; if (d < 0) d = 0; print d / (n > 0 ? n : 1) }' >>"$1"
}
# mean FILE: the mean of the figures in FILE (a target runs twice a round)
mean() { awk '{ s += $1; n++ } END { printf "%.6f\n", n ? s / n : 0 }' "$1"; }
file_of() { if [ "$1" = native ]; then echo "$W/src/img"; else echo "$W/mnt-$1/img"; fi; }
# the targets in order, then reversed: A B C C B A
abba() { echo "$TARGETS"; echo "$TARGETS" | tr ' ' '\n' | tac | tr '\n' ' '; }

{
	echo "relocfs mirror benchmark: fio natively and through relocfs, per transport, one run"
	echo
	machine_facts
	echo "file:        ${SIZE} MiB, fully written; one inode, hard-linked into each mount's source"
	echo "fio:         --time_based --runtime=$RUNTIME --numjobs=1; $REPS rounds per job, each"
	echo "             over the targets in ABBA order ($(abba | tr '\n' ' ')); caches dropped before"
	echo "             each run; means below"
	echo "relocfs:     $RELOCFS, one mount each: $TRANSPORTS ${opts:+($opts)}"
	echo "             (the writeback cache on by default; -nowb: the same transport with"
	echo "             -o nowriteback; -poll: with -o poll=$POLL_US)"
	echo
	printf '%-26s %9s' job "nat MiB/s"
	for t in $TRANSPORTS; do printf ' | %9s %6s %7s' "$t MiB/s" ratio cpu_us; done
	echo
	echo "(ratio: mount / native bandwidth; cpu_us: relocfs worker user+sys CPU microseconds per request;"
	echo " machine CPU busy: all CPUs' time not idle or waiting for I/O during the runs, fio's and the"
	echo " disk's interrupts included: near 100 % the job is bound by CPU, not by the disk;"
	echo " backing disk: its mean queue depth and time per request from /proc/diskstats, what"
	echo " the storage saw of each target's requests)"
} >"$OUT.tmp"

hz=$(getconf CLK_TCK)
echo "$JOBS" | while read -r name rw bs eng qd direct sync; do
	[ -n "$name" ] || continue
	echo "$name" | grep -Eq "${MIRROR_JOBS:-.}" || continue
	log "mirror: $name"
	for tg in $TARGETS; do
		: >"$RAW/$name.$tg.cache"
		: >"$RAW/$name.$tg"
		: >"$RAW/$name.$tg.cpu"
		: >"$RAW/$name.$tg.iowq"
		: >"$RAW/$name.$tg.busy"
		: >"$RAW/$name.$tg.disk"
	done
	k=1
	while [ $k -le "$REPS" ]; do
		for tg in $(abba); do
			if [ "$tg" = native ]; then
				s0=$(cpu_stat)
				DISK_OUT=$RAW/$name.native.disk CACHE_OUT=$RAW/$name.native.cache
				run_fio "$name" "native$k" "$(file_of native)" "$rw" "$bs" "$eng" "$qd" "$direct" \
					$sync >>"$RAW/$name.native"
				busy_pct "$RAW/$name.native.busy" "$s0" "$(cpu_stat)"
				continue
			fi
			pid=$(worker_of "$tg")
			t0=$(cpu_ticks "$pid")
			w0=$(iowq_waits "$pid")
			s0=$(cpu_stat)
			DISK_OUT=$RAW/$name.$tg.disk CACHE_OUT=$RAW/$name.$tg.cache
			res=$(run_fio "$name" "$tg$k" "$(file_of "$tg")" "$rw" "$bs" "$eng" "$qd" "$direct" $sync)
			busy_pct "$RAW/$name.$tg.busy" "$s0" "$(cpu_stat)"
			t1=$(cpu_ticks "$pid")
			w1=$(iowq_waits "$pid")
			echo "$res" >>"$RAW/$name.$tg"
			per_request "$RAW/$name.$tg.cpu" "$t0" "$t1" "${res#* }"
			per_request "$RAW/$name.$tg.iowq" "$w0" "$w1" "${res#* }"
		done
		k=$((k + 1))
	done
	nbw=$(awk '{ s += $1; n++ } END { printf "%.3f\n", s / n }' "$RAW/$name.native")
	line=$(printf '%-26s %9.1f' "$name" "$(echo "$nbw / 1024" | bc -l)")
	for t in $TRANSPORTS; do
		mbw=$(awk '{ s += $1; n++ } END { printf "%.3f\n", s / n }' "$RAW/$name.$t")
		# ticks per request, the mean of the runs -> microseconds per request
		cpu=$(mean "$RAW/$name.$t.cpu" | awk -v hz="$hz" '{ printf "%.1f", $1 / hz * 1e6 }')
		line="$line$(printf ' | %9.1f %6s %7s' "$(echo "$mbw / 1024" | bc -l)" "$(ratio "$mbw" "$nbw")" "$cpu")"
		echo "$name $t $(ratio "$mbw" "$nbw") $cpu" >>"$RAW/ratios"
	done
	echo "$line" >>"$OUT.tmp"
	{
		printf '  runs, MiB/s: native'
		awk '{ printf " %.1f", $1 / 1024 }' "$RAW/$name.native"
		for t in $TRANSPORTS; do printf ' / %s' "$t"; awk '{ printf " %.1f", $1 / 1024 }' "$RAW/$name.$t"; done
		echo
		printf '  machine CPU busy, %% of %s CPUs:' "$(nproc)"
		for tg in $TARGETS; do printf ' %s %.0f' "$tg" "$(mean "$RAW/$name.$tg.busy")"; done
		echo
		if [ "$direct" = 0 ]; then
			printf '  page cache grown, MiB per MiB moved:'
			for tg in $TARGETS; do printf ' %s %.2f' "$tg" "$(mean "$RAW/$name.$tg.cache")"; done
			echo
		fi
		if [ -n "$DISK" ]; then
			printf '  backing disk %s, requests in flight / us each:' "$DISK"
			for tg in $TARGETS; do
				awk -v tg="$tg" '{ q += $1; l += $2; n++ }
					END { printf " %s %.1f / %.0f", tg, q / n, l / n }' "$RAW/$name.$tg.disk"
			done
			echo
		fi
	} >>"$OUT.tmp"
done

# lat_us FILE...: the mean read latency (lat_ns.mean) over fio's JSON files, in us
lat_us() { jq -s '[.[].jobs[0].read.lat_ns.mean] | add / length / 1000' "$@"; }
# fio_cpu_us FILE...: fio's own user+sys CPU per I/O over its JSON files, in us
fio_cpu_us() {
	jq -s '[.[].jobs[0] | (.usr_cpu + .sys_cpu) / 100 * .job_runtime * 1000 / .read.total_ios] |
	       add / length' "$@"
}

# Where a 4 KiB direct read at QD1 spends its time.  The same job over a tmpfs
# source, where the storage costs next to nothing: what a mount adds there is
# its transport's round trip (the wake-ups of the relocfs thread and of the
# reader, and the copies).  Beside it, what each mount added over the disk in
# the runs above, and the relocfs worker's CPU per request.
QD1=randread-4k-direct-qd1
DISK_OUT=	# tmpfs: no disk to count
if [ "${MIRROR_RTT:-1}" = 1 ] && echo "$QD1" | grep -Eq "${MIRROR_JOBS:-.}"; then
	log "mirror: $QD1 over a tmpfs source, for the transports' round trip"
	RTT_T=$(for t in $TRANSPORTS; do echo "${t%-nowb}"; done | awk '!seen[$0]++' | tr '\n' ' ')
	mkdir -p "$W/tmpfs"
	mount -t tmpfs -o size=$((SIZE + 64))m relocfs-bench "$W/tmpfs"
	mkdir -p "$W/tmpfs/src"
	make_image "$W/tmpfs/src/img" "$SIZE" 0
	for t in $RTT_T; do
		mkdir -p "$W/tmpfs/src-$t" "$W/tmpfs/mnt-$t" "$W/tmpfs/run-$t"
		ln "$W/tmpfs/src/img" "$W/tmpfs/src-$t/img"
		# shellcheck disable=SC2086
		RELOCFS_RUNDIR=$W/tmpfs/run-$t "$RELOCFS" $(opts_of "$t") $opts "$W/tmpfs/src-$t" \
			"$W/tmpfs/mnt-$t" 2>"$W/tmpfs/run-$t/relocfs.log" ||
			die "relocfs ($t, tmpfs) failed to start: $(cat "$W/tmpfs/run-$t/relocfs.log")"
	done
	RTT_TARGETS="native $RTT_T"
	for t in $RTT_T; do : >"$RAW/rtt.$t.iowq"; done
	k=1
	while [ $k -le "$REPS" ]; do
		for tg in $RTT_TARGETS $(echo "$RTT_TARGETS" | tr ' ' '\n' | tac); do
			if [ "$tg" = native ]; then
				run_fio rtt "$tg$k" "$W/tmpfs/src/img" randread 4k libaio 1 1 >/dev/null
				continue
			fi
			pid=$(RELOCFS_RUNDIR=$W/tmpfs/run-$tg "$RELOCCTL" -m "$W/tmpfs/mnt-$tg" status --json |
			      jq -r .worker_pid)
			w0=$(iowq_waits "$pid")
			res=$(run_fio rtt "$tg$k" "$W/tmpfs/mnt-$tg/img" randread 4k libaio 1 1)
			per_request "$RAW/rtt.$tg.iowq" "$w0" "$(iowq_waits "$pid")" "${res#* }"
		done
		k=$((k + 1))
	done
	dnat=$(lat_us "$RAW/$QD1"-native[0-9]*.json)
	tnat=$(lat_us "$RAW"/rtt-native[0-9]*.json)
	{
		echo
		echo "where a 4 KiB direct read at QD1 spends its time (mean latency, us, same run):"
		printf '  %-8s %9s %9s %14s %14s %12s %9s %15s\n' target disk tmpfs "added on disk" \
			"added on tmpfs" "relocfs CPU" "fio CPU" "io-wq disk/tmpfs"
		printf '  %-8s %9.1f %9.1f %14s %14s %12s %9.1f\n' native "$dnat" "$tnat" "" "" "" \
			"$(fio_cpu_us "$RAW/$QD1"-native[0-9]*.json)"
		for t in $RTT_T; do
			d=$(lat_us "$RAW/$QD1-$t"[0-9]*.json)
			m=$(lat_us "$RAW/rtt-$t"[0-9]*.json)
			cpu=$(awk -v n="$QD1" -v t="$t" '$1 == n && $2 == t {print $4}' "$RAW/ratios")
			hops=$(printf '%.2f/%.2f' "$(mean "$RAW/$QD1.$t.iowq")" "$(mean "$RAW/rtt.$t.iowq")")
			printf '  %-8s %9.1f %9.1f %14.1f %14.1f %12s %9.1f %15s\n' "$t" "$d" "$m" \
				"$(echo "$d - $dnat" | bc -l)" "$(echo "$m - $tnat" | bc -l)" "$cpu" \
				"$(fio_cpu_us "$RAW/$QD1-$t"[0-9]*.json)" "$hops"
		done
		echo "  (added on tmpfs: the transport's round trip, storage aside; relocfs CPU: the"
		echo "  worker's user+sys us per request on the disk; fio CPU: fio's own per read on the"
		echo "  disk, which natively includes the disk's submission; io-wq: sleeps of io_uring's"
		echo "  worker threads per request, on the disk and on tmpfs: a backing read io_uring"
		echo "  cannot issue without blocking goes through one of them, a hop of its own; the same"
		echo "  file size on tmpfs, $REPS ABBA rounds)"
	} >>"$OUT.tmp"
fi

# What each transport serves when the storage is not the limit: 4 KiB random
# I/O on ext4 over a loop device on tmpfs (which, unlike tmpfs itself,
# io_uring reads and writes without its worker threads, as it does the
# disk).  Natively such a device serves several times what the mounts do, so
# the ratios here are the transports' own cost per request, CPU and
# wake-ups, with no host disk to vary between runs.
# name rw ioengine iodepth direct
FAST_JOBS="
fast-randread-4k-qd1      randread  libaio 1  1
fast-randread-4k-qd16     randread  libaio 16 1
fast-randwrite-4k-qd1     randwrite libaio 1  1
fast-randwrite-4k-qd16    randwrite libaio 16 1
fast-randread-4k-buffered randread  psync  1  0
"
fast=0
if [ "${MIRROR_FAST:-1}" = 1 ] && echo "$FAST_JOBS" | grep -Eq "${MIRROR_JOBS:-.}"; then
	fast=1
	losetup -f >/dev/null 2>&1 || fast=0
	[ $fast = 1 ] ||
		echo "(no free loop device here: the part on storage that is not the limit is skipped)" >>"$OUT.tmp"
fi
if [ $fast = 1 ]; then
	log "mirror: 4 KiB random I/O on ext4 over a loop device on tmpfs"
	FAST_T=$(for t in $TRANSPORTS; do echo "${t%-nowb}"; done | awk '!seen[$0]++' | tr '\n' ' ')
	mkdir -p "$W/fast"
	mount -t tmpfs -o size=$((SIZE + 256))m relocfs-bench-fast "$W/fast"
	truncate -s $((SIZE + 192))M "$W/fast/dev.img"
	FAST_LOOP=$(losetup -f --show "$W/fast/dev.img") || die "no loop device for the fast part"
	mkfs.ext4 -q -F "$FAST_LOOP" || die "mkfs.ext4 on $FAST_LOOP failed"
	mkdir -p "$W/fast/fs"
	mount "$FAST_LOOP" "$W/fast/fs"
	F=$W/fast/fs
	mkdir -p "$F/src"
	make_image "$F/src/img" "$SIZE" 0
	for t in $FAST_T; do
		mkdir -p "$F/src-$t" "$F/mnt-$t" "$F/run-$t"
		ln "$F/src/img" "$F/src-$t/img"
		# shellcheck disable=SC2086
		RELOCFS_RUNDIR=$F/run-$t "$RELOCFS" $(opts_of "$t") $opts "$F/src-$t" "$F/mnt-$t" \
			2>"$F/run-$t/relocfs.log" ||
			die "relocfs ($t, fast) failed to start: $(cat "$F/run-$t/relocfs.log")"
	done
	FAST_TARGETS="native $FAST_T"
	{
		echo
		echo "4 KiB random I/O on ext4 over a loop device on tmpfs (IOPS, same run;"
		echo "storage that is not the limit: the ratio is each transport's own cost):"
		printf '  %-24s %9s' job native
		for t in $FAST_T; do printf ' | %9s %6s %7s' "$t" ratio cpu_us; done
		echo
	} >>"$OUT.tmp"
	DISK_OUT=
	echo "$FAST_JOBS" | while read -r name rw eng qd direct; do
		[ -n "$name" ] || continue
		echo "$name" | grep -Eq "${MIRROR_JOBS:-.}" || continue
		for tg in $FAST_TARGETS; do : >"$RAW/$name.$tg"; : >"$RAW/$name.$tg.cpu"; done
		k=1
		while [ $k -le "$REPS" ]; do
			for tg in $FAST_TARGETS $(echo "$FAST_TARGETS" | tr ' ' '\n' | tac); do
				if [ "$tg" = native ]; then
					run_fio "$name" "native$k" "$F/src/img" "$rw" 4k "$eng" "$qd" "$direct" \
						>>"$RAW/$name.native"
					continue
				fi
				pid=$(RELOCFS_RUNDIR=$F/run-$tg "$RELOCCTL" -m "$F/mnt-$tg" status --json |
				      jq -r .worker_pid)
				t0=$(cpu_ticks "$pid")
				res=$(run_fio "$name" "$tg$k" "$F/mnt-$tg/img" "$rw" 4k "$eng" "$qd" "$direct")
				echo "$res" >>"$RAW/$name.$tg"
				per_request "$RAW/$name.$tg.cpu" "$t0" "$(cpu_ticks "$pid")" "${res#* }"
			done
			k=$((k + 1))
		done
		# bandwidth in KiB/s of 4 KiB requests -> IOPS
		nbw=$(awk '{ s += $1; n++ } END { printf "%.3f\n", s / n }' "$RAW/$name.native")
		line=$(printf '  %-24s %9.0f' "$name" "$(echo "$nbw / 4" | bc -l)")
		runs=$(printf '    runs, IOPS: native'; awk '{ printf " %.0f", $1 / 4 }' "$RAW/$name.native")
		for t in $FAST_T; do
			mbw=$(awk '{ s += $1; n++ } END { printf "%.3f\n", s / n }' "$RAW/$name.$t")
			cpu=$(mean "$RAW/$name.$t.cpu" | awk -v hz="$hz" '{ printf "%.1f", $1 / hz * 1e6 }')
			line="$line$(printf ' | %9.0f %6s %7s' "$(echo "$mbw / 4" | bc -l)" "$(ratio "$mbw" "$nbw")" "$cpu")"
			runs="$runs$(printf ' / %s' "$t"; awk '{ printf " %.0f", $1 / 4 }' "$RAW/$name.$t")"
		done
		echo "$line" >>"$OUT.tmp"
		echo "$runs" >>"$OUT.tmp"
	done
	echo "  ($REPS ABBA rounds; cpu_us: the relocfs worker's user+sys us per request)" >>"$OUT.tmp"
fi

get() { awk -v n="$1" -v t="$2" '$1 == n && $2 == t {print $3}' "$RAW/ratios"; }
{
	echo
	for t in $TRANSPORTS; do
		pid=$(worker_of "$t")
		echo "$t worker memory after the run: $(awk '/^VmRSS|^VmHWM/ {printf "%s %d kB  ", $1, $2}' "/proc/$pid/status")"
	done
	echo
	echo "targets:"
	for t in $TRANSPORTS; do
		hwm=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$(worker_of "$t")/status")
		for spec in "randread-4k-direct-qd1 0.8" "randread-4k-direct-qd16 1.0" \
			    "randwrite-4k-direct-qd1 0.8" "randwrite-4k-direct-qd16 0.8" \
			    "seqread-1m-direct-qd1 0.9" "seqwrite-1m-direct-qd1 0.9" \
			    "randwrite-4k-buffered 0.5" "randread-4k-buffered 0.8"; do
			set -- $spec
			r=$(get "$1" "$t")
			[ -n "$r" ] || continue	# not run (MIRROR_JOBS)
			printf '  %-5s %-36s >= %-4s %7s  %s\n' "$t" "$1" "$2" "$r" "$(verdict "$r" '>=' "$2")"
		done
		printf '  %-5s %-36s    %-4s %7s  %s\n' "$t" "worker VmHWM < 64 MiB" "" "${hwm}MiB" \
			"$(verdict "$hwm" '<=' 63.999)"
	done
} >>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
