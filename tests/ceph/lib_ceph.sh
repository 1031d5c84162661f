# tests/ceph/lib_ceph.sh: a throw-away one-node Ceph cluster for the tests
# (bash; source it after tests/lib.sh).
#
#   ceph_start [mds]   start ceph-mon, ceph-mgr and one ceph-osd (memstore)
#                      under $CEPH_DIR, with a pool "rbd" for images; with
#                      "mds", also a CephFS (ceph-mds) for ceph_fuse_mount
#   ceph_stop          stop every daemon it started (at_cleanup does it too)
#   ceph_fuse_mount D [OPT...]  mount the CephFS at D with ceph-fuse (undone at cleanup)
#   rbd_ ARGS          the rbd tool against the cluster
#   ceph_ ARGS         the ceph tool against the cluster
#
# RELOCFS_CEPH_CONF=PATH uses a cluster already running (with a pool "rbd")
# instead of starting one, when working on a test.
#
# $CEPH_CONF is the cluster's configuration: auth none, size-1 pools,
# "osd crush chooseleaf type = 0", memstore (the data lives in the OSD's
# memory, 256 MiB of it), everything on 127.0.0.1 on ports of its own
# (ten free ones from a start derived from the test's pid, so that two tests
# never share a cluster by accident).  It reaches HEALTH_OK in about 10 s on
# an idle machine (a minute on a loaded one) and takes about 0.5 GiB.
# Daemons are ended by their pids, never by name: other clusters may run.
#
# Skips (exit 77) only if the Debian packages cannot be installed.

CEPH_DIR=$TEST_DIR/ceph
CEPH_CONF=$CEPH_DIR/ceph.conf
CEPH_PIDS=()
CEPH_FUSE_MNTS=()

ceph_packages() {
	# programs, not dpkg-query: that takes seconds on a loaded machine
	command -v ceph-mon >/dev/null && command -v ceph-mgr >/dev/null &&
		command -v ceph-osd >/dev/null && command -v ceph-mds >/dev/null &&
		command -v ceph-fuse >/dev/null && command -v rbd >/dev/null &&
		command -v monmaptool >/dev/null && return 0
	[ "$(id -u)" = 0 ] || skip "the Ceph packages are missing (not root: run tests/deps.sh)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common >"$TEST_DIR/apt.log" 2>&1 ||
		skip "cannot install the Ceph packages (see apt-get)"
}

rbd_() { rbd -c "$CEPH_CONF" "$@"; }
ceph_() { timeout 60 ceph -c "$CEPH_CONF" "$@"; }

ceph_start() {
	local with_mds=${1:-} port fsid uuid t
	if [ -n "${RELOCFS_CEPH_CONF:-}" ] && [ -z "$with_mds" ]; then
		# a cluster kept running between runs (when working on a test);
		# the tests name their images after themselves and their pid
		CEPH_CONF=$RELOCFS_CEPH_CONF
		return 0
	fi
	ceph_packages
	at_cleanup ceph_stop
	# Now and then (more often with other clusters on the machine) a new
	# OSD's first command is refused by its monitor with "wrong fsid" and
	# the OSD exits at its start, however often it is started again, or
	# the first command of the set-up is refused ("problem getting command
	# descriptions from mon"); a new cluster, with a new fsid on other
	# ports, comes up
	for t in 1 2 3 4; do
		[ "$t" -lt 4 ] || ceph_failed "three new clusters did not come up"
		ceph_start_once "$with_mds" $((t - 1)) && return 0
		say "  the test's Ceph cluster did not come up (its OSD exited, or its first command was refused); a new cluster"
		ceph_stop
		mv "$CEPH_DIR" "$CEPH_DIR.failed$t"
	done
}

# ceph_start_once MDS TRY: 0 when the cluster is up, 1 if its OSD exited
# at its start or its first pool could not be made; fails the test otherwise
ceph_start_once() {
	local with_mds=$1 port fsid uuid t
	port=$(ceph_free_ports $(($2 * 100)))
	fsid=$(cat /proc/sys/kernel/random/uuid)
	mkdir -p "$CEPH_DIR"/{mon,mgr,osd,mds,run,log}
	cat >"$CEPH_CONF" <<-EOF
	[global]
	fsid = $fsid
	mon host = [v1:127.0.0.1:$port]
	public addr = 127.0.0.1
	ms bind msgr2 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg autoscale mode = off
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	mon warn on insecure global id reclaim allowed = false
	mon data avail warn = 1
	mon data avail crit = 0
	osd crush chooseleaf type = 0
	osd objectstore = memstore
	memstore device bytes = 268435456
	mgr stats period = 1
	mon mgr digest period = 1
	run dir = $CEPH_DIR/run
	log file = $CEPH_DIR/log/\$name.log
	admin socket = $CEPH_DIR/run/\$name.asok
	ms bind port min = $((port + 1))
	ms bind port max = $((port + 9))
	rados osd op timeout = 15
	rados mon op timeout = 15
	client mount timeout = 10
	[client]
	# clients (relocfs, rbd, ceph) run side by side: no shared socket
	admin socket =
	log file = $CEPH_DIR/log/client.log
	[mon.a]
	mon data = $CEPH_DIR/mon
	[mgr.x]
	mgr data = $CEPH_DIR/mgr
	[osd.0]
	osd data = $CEPH_DIR/osd
	osd journal size = 32
	[mds.a]
	mds data = $CEPH_DIR/mds
	EOF
	monmaptool --create --fsid "$fsid" --addv a "v1:127.0.0.1:$port" "$CEPH_DIR/monmap" \
		>/dev/null
	ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$CEPH_DIR/monmap" --keyring /dev/null \
		2>>"$CEPH_DIR/log/setup.log"
	ceph_daemon ceph-mon -i a
	ceph_daemon ceph-mgr -i x
	uuid=$(cat /proc/sys/kernel/random/uuid)
	ceph_ osd new "$uuid" 0 >/dev/null
	ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$uuid" 2>>"$CEPH_DIR/log/setup.log" >/dev/null
	# pools only once the OSD is up: before, every client call waits out
	# its timeout
	ceph_daemon ceph-osd -i 0
	ceph_osd_up "${CEPH_PIDS[-1]}" || return 1
	ceph_ osd pool create rbd 8 >>"$CEPH_DIR/log/setup.log" 2>&1 || return 1
	rbd_ pool init rbd 2>>"$CEPH_DIR/log/setup.log" || ceph_failed "rbd pool init failed"
	if [ -n "$with_mds" ]; then
		ceph_setup osd pool create cephfs_data 8
		ceph_setup osd pool create cephfs_meta 8
		ceph_setup fs new cephfs cephfs_meta cephfs_data
		ceph_daemon ceph-mds -i a
	fi
	# HEALTH_OK alone is not enough: it is reported while the PGs are
	# still unknown
	# (a hang guard: the manager alone loaded its modules for 2 minutes
	# on a loaded machine)
	t=$((SECONDS + 240))
	until ceph_healthy; do
		[ $SECONDS -lt $t ] || ceph_failed "no HEALTH_OK with every PG active+clean within 240 s"
		sleep 0.2
	done
	# HEALTH_OK may come before the new file system's MDS is active
	until [ -z "$with_mds" ] || ceph_mds_active; do
		[ $SECONDS -lt $t ] || ceph_failed "no active MDS within 240 s"
		sleep 0.2
	done
}

# ceph_setup ARGS: a ceph command of the set-up; fails the test with what it
# said.  A new monitor now and then refuses a command before it is sent
# ("problem getting command descriptions from mon"), not only the first:
# that one is tried again.
ceph_setup() {
	local i out rc
	for i in 1 2 3 4 5; do
		rc=0
		out=$(ceph_ "$@" 2>&1) || rc=$?
		printf '%s\n' "$out" >>"$CEPH_DIR/log/setup.log"
		[ $rc != 0 ] || return 0
		case $out in
		*"problem getting command descriptions"*) sleep 1 ;;
		*) break ;;
		esac
	done
	ceph_failed "'ceph $*' failed"
}

# ceph_mds_active: 0 once the CephFS has an active MDS (a client mounting
# before that gives up: "probably no MDS server is up?")
ceph_mds_active() {
	ceph_ mds stat 2>/dev/null | grep -q 'up:active'
}

# ceph_osd_up PID: 0 once the OSD is up, 1 if it exited first; fails the
# test after 90 s
ceph_osd_up() {
	local t=$((SECONDS + 90))
	until [ "$(ceph_ osd stat -f json 2>/dev/null | jq -r .num_up_osds)" = 1 ]; do
		kill -0 "$1" 2>/dev/null || return 1
		[ $SECONDS -lt $t ] || ceph_failed "the OSD did not come up within 90 s"
		sleep 0.2
	done
}

ceph_healthy() {
	local s
	s=$(ceph_ status -f json 2>/dev/null) || return 1
	[ "$(jq -r '.health.status' <<<"$s")" = HEALTH_OK ] &&
		[ "$(jq -r '.osdmap.num_up_osds // .osdmap.osdmap.num_up_osds' <<<"$s")" = 1 ] &&
		jq -e '.pgmap.num_pgs > 0 and ([.pgmap.pgs_by_state[] |
			select(.state_name != "active+clean")] | length) == 0' <<<"$s" >/dev/null
}

# ceph_failed WHY: fail the test, with what the daemons said
ceph_failed() {
	local l
	for l in "$CEPH_DIR"/log/*.out "$CEPH_DIR"/log/setup.log; do
		[ -s "$l" ] || continue
		say "  $(basename "$l"):"
		tail -n 5 "$l" | sed 's/^/    | /'
	done
	fail "the test's Ceph cluster: $1: $(ceph_ health detail 2>&1 | head -5)"
}

# ceph_free_ports [OFFSET]: the first of ten ports on 127.0.0.1 that nothing
# listens on (free_ports in tests/lib.sh; a cluster reached through a port
# another one left behind answers with the wrong fsid)
ceph_free_ports() {
	free_ports 28000 32760 10 "${1:-0}" || fail "no free ports for the test's Ceph cluster"
}

# ceph_daemon PROG ARGS: start a daemon in the foreground of a background
# job, so that its pid is ours to end
ceph_daemon() {
	local prog=$1
	shift
	"$prog" -f -c "$CEPH_CONF" "$@" >>"$CEPH_DIR/log/$prog.out" 2>&1 &
	CEPH_PIDS+=("$!")
}

ceph_stop() {
	local p i
	for p in "${CEPH_FUSE_MNTS[@]}"; do
		fusermount3 -u "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || true
	done
	# a ceph-fuse (it runs on in the background) ends once unmounted, but
	# one that cannot reach the cluster any more would wait for it for ever
	if [ ${#CEPH_FUSE_MNTS[@]} -gt 0 ]; then
		for i in $(seq 20); do
			pgrep -f "ceph-fuse -c $CEPH_CONF" >/dev/null || break
			sleep 0.1
		done
		pkill -KILL -f "ceph-fuse -c $CEPH_CONF" 2>/dev/null || true
	fi
	CEPH_FUSE_MNTS=()
	[ ${#CEPH_PIDS[@]} -gt 0 ] || return 0
	# the clients first (mds), then the OSD, the manager, the monitor; the
	# data is thrown away, so a daemon slow to stop is killed after 1 s
	for ((i = ${#CEPH_PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${CEPH_PIDS[$i]}" 2>/dev/null || true
	done
	for i in $(seq 10); do
		local alive=
		for p in "${CEPH_PIDS[@]}"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in "${CEPH_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	CEPH_PIDS=()
}

# ceph_fuse_mount DIR [OPTION...]: the cluster's CephFS at DIR
ceph_fuse_mount() {
	local i
	mkdir -p "$1"
	ceph-fuse -c "$CEPH_CONF" --client_mount_timeout=20 "${@:2}" "$1" >>"$CEPH_DIR/log/ceph-fuse.out" 2>&1 ||
		fail "ceph-fuse could not mount the test's CephFS: $(tail -3 "$CEPH_DIR/log/ceph-fuse.out")"
	CEPH_FUSE_MNTS+=("$1")
	for i in $(seq 100); do
		mountpoint -q "$1" && return 0
		sleep 0.1
	done
	fail "ceph-fuse did not mount '$1'"
}
