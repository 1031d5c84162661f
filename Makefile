# relocfs: one non-recursive Makefile.
#   make            build relocfs and relocctl
#   make check      unit tests, then integration tests on real FUSE mounts
#   make soak       the same with every case of the sampling tests (RELOCFS_SOAK=1)
#   make bench      fio and copier benchmarks, results under bench/results/
#   make demo       install what is missing, build, relocate a demo image live
#   make asan/tsan  the suite under AddressSanitizer / ThreadSanitizer
#   make install    binaries, man pages, the systemd unit, bash completion
#                   (PREFIX, DESTDIR, SBINDIR, MANDIR, UNITDIR, BASHCOMPDIR)

CC      ?= cc
# the one version string: relocfs --version, relocctl --version, and
# debian/changelog, which debian/rules checks against it
VERSION := $(shell cat VERSION)
PKGS    := fuse3 libxxhash jansson libsystemd liburing
CFLAGS  ?= -O2 -g
WARN    := -std=gnu11 -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
           -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -DFUSE_USE_VERSION=314 -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
# librbd and librados are not linked: target/rbdlib.c loads them (dlopen,
# in glibc's libc since 2.34) when an RBD destination is first used, so that
# a mount that never reaches Ceph does not carry them; only their headers
# (librbd-dev, librados-dev) are needed to build
BUILD   ?= build

# where make install puts things; both programs go to sbin: relocfs is a
# daemon that mount(8) starts as root, and relocctl talks to a socket that
# only root (or the daemon's own user) may use, like dmsetup or zpool
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

# one layer per folder, calls only downward:
#   daemon/   start-up                      ctl/      control protocol, server, job engine
#   vmhooks/  hypervisor hooks              copier/   base copy and merge scheduling
#   fs/       the FUSE layer                delta/    delta store, live view, merge engine
#   target/   destinations: a file, an RBD image
#   common/   log, crash points, clock, helpers
COMMON_SRC := common/log.c common/crashpoint.c common/util.c common/shm.c
DELTA_SRC  := delta/bitmap.c delta/journal.c delta/wal.c delta/store.c delta/view.c delta/merge.c
FS_SRC     := fs/session.c fs/table.c fs/once.c fs/takeover.c fs/inode.c fs/gate.c fs/handle.c fs/route.c fs/data.c fs/names.c \
              fs/dirs.c fs/xattrs.c fs/request.c fs/loop.c fs/uring.c fs/bounce.c
TARGET_SRC := target/target.c target/rbd.c target/rbdlib.c
COPIER_SRC := copier/copier.c copier/budget.c copier/ratelimit.c
HOOK_SRC   := vmhooks/vmhook.c vmhooks/hook_util.c vmhooks/qmp.c vmhooks/qmp_hook.c \
              vmhooks/qmp_rbd.c vmhooks/qmp_migrate_hook.c vmhooks/exec_hook.c vmhooks/libvirt_hook.c
CTL_COMMON := ctl/proto.c
ENGINE_SRC := ctl/server.c ctl/mount_state.c ctl/engine.c ctl/record.c ctl/job.c ctl/rbd_dest.c \
              ctl/namespace.c ctl/sched.c ctl/migrate.c ctl/cutover.c ctl/handoff.c ctl/switch.c \
              ctl/abort.c ctl/status.c ctl/recover.c
DAEMON_SRC := daemon/main.c daemon/supervisor.c daemon/worker.c daemon/service.c
RELOCFS_SRC  := $(DAEMON_SRC) $(ENGINE_SRC) $(CTL_COMMON) $(HOOK_SRC) $(COPIER_SRC) $(FS_SRC) \
                $(DELTA_SRC) $(TARGET_SRC) $(COMMON_SRC)
RELOCCTL_SRC := ctl/relocctl.c $(CTL_COMMON)

RELOCFS_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(RELOCFS_SRC))
RELOCCTL_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(RELOCCTL_SRC))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_BIN  := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRC))

.PHONY: all check soak unit integration bench demo asan tsan install uninstall clean deps fuzz

all: $(BUILD)/relocfs $(BUILD)/relocctl $(TOOL_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/relocfs: $(RELOCFS_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# relocctl needs none of the daemon's libraries but jansson and xxhash
$(BUILD)/relocctl: $(RELOCCTL_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs jansson libxxhash 2>/dev/null)

# the version is compiled into the two programs only
$(BUILD)/daemon/main.o $(BUILD)/ctl/relocctl.o: VERSION
$(BUILD)/daemon/main.o $(BUILD)/ctl/relocctl.o: CPPFLAGS += -DRELOCFS_VERSION='"$(VERSION)"'

# unit tests link the module under test with cmocka; tests/unit/test_NAME.c names
# its modules on a line "// modules: a/b.c c/d.c"
$(BUILD)/tests/test_%: tests/unit/test_%.c $(RELOCFS_SRC) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< \
	    $$(sed -n 's#^// modules: ##p' $<) $(LDLIBS) $$(pkg-config --libs cmocka)

$(BUILD)/tests/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< -lpthread $(shell pkg-config --libs libxxhash)

deps:
	@sh tests/deps.sh

unit: all $(UNIT_BIN)
	@sh tests/run_unit.sh $(UNIT_BIN)

integration: all
	@RELOCFS_BUILD=$(BUILD) bash tests/run_integration.sh

# the tests run the programs and tools that this make built, in $(BUILD)
check: deps all
	@RELOCFS_BUILD=$(BUILD) sh tests/run_all.sh

# every case of the tests that sample in make check (RELOCFS_SOAK): each
# crash point on every path, more kills; hours, not minutes
soak: deps all
	@RELOCFS_SOAK=1 RELOCFS_TEST_TIMEOUT=7200 RELOCFS_BUILD=$(BUILD) sh tests/run_all.sh

bench: deps all
	@RELOCFS_BUILD=$(BUILD) sh bench/run.sh

demo: deps all
	@sh demo/demo.sh

fuzz:
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# every report of every process goes to a file under $(BUILD)/sanitizer, which
# run_all.sh checks at the end (a daemon killed on purpose reports too)
asan:
	rm -rf build-asan/sanitizer && mkdir -p build-asan/sanitizer
	ASAN_OPTIONS=log_path=$(CURDIR)/build-asan/sanitizer/asan \
	UBSAN_OPTIONS=log_path=$(CURDIR)/build-asan/sanitizer/ubsan:print_stacktrace=1 \
	RELOCFS_SANITIZER_DIR=$(CURDIR)/build-asan/sanitizer \
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" RELOCFS_BUILD=build-asan RELOCFS_NO_VALGRIND=1 RELOCFS_TEST_TIMEOUT=1800 check

tsan:
	rm -rf build-tsan/sanitizer && mkdir -p build-tsan/sanitizer
	TSAN_OPTIONS=log_path=$(CURDIR)/build-tsan/sanitizer/tsan \
	RELOCFS_SANITIZER_DIR=$(CURDIR)/build-tsan/sanitizer \
	$(MAKE) BUILD=build-tsan CC=clang CFLAGS="-O1 -g -fsanitize=thread -Wconditional-uninitialized" LDFLAGS="-fsanitize=thread" \
	    RELOCFS_BUILD=build-tsan RELOCFS_NO_VALGRIND=1 RELOCFS_TEST_TIMEOUT=1800 check

INSTALLED := $(SBINDIR)/relocfs $(SBINDIR)/relocctl \
	     $(MANDIR)/man8/relocfs.8 $(MANDIR)/man8/relocctl.8 $(MANDIR)/man7/relocfs.7 \
	     $(UNITDIR)/relocfs@.service $(BASHCOMPDIR)/relocctl

# the unit names the programs where this install puts them
install: $(BUILD)/relocfs $(BUILD)/relocctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(BUILD)/relocfs $(BUILD)/relocctl $(DESTDIR)$(SBINDIR)/
	install -m 644 dist/relocfs.8 dist/relocctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 dist/relocfs.7 $(DESTDIR)$(MANDIR)/man7/
	sed 's#@SBINDIR@#$(SBINDIR)#g' dist/relocfs@.service.in >$(DESTDIR)$(UNITDIR)/relocfs@.service
	chmod 644 $(DESTDIR)$(UNITDIR)/relocfs@.service
	install -m 644 dist/relocctl.bash-completion $(DESTDIR)$(BASHCOMPDIR)/relocctl

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

clean:
	rm -rf build build-asan build-tsan build-clang

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
