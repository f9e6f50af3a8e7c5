# Makefile — ffmeter (GNU make).  Run ./configure first; see README.md.
#
#   make                 libmeter (.a .so .pc), meterctl, and ffmpeg/ffprobe
#                        with the filters unless configured --disable-ffmpeg
#   make check           every test through tests/run: one closing line
#   make check-unit | check-cli | check-filter | check-console
#   make check-farm      farm mode's drain: 8 nodes spend one pooled pack
#                        through leases, with faults, both backends (in check)
#   make check-load      the load suite (8 nodes × 20k records, both ledger
#                        backends, figures; a few minutes; not in check)
#   make check-ffmpeg-suite SUITE=trixie    filter tests against that Debian
#                        suite's FFmpeg, built in $(BUILD)/ffmpeg-trixie/
#   make check-ffmpeg-src SRC=/path/to/ffmpeg   same, for any FFmpeg tree
#   make fuzz [FUZZ_SECONDS=N] | check-fuzz    libFuzzer targets (tests/fuzz)
#   make install [PREFIX=… DESTDIR=…] | uninstall | demo | clean | distclean
#
# Several build directories: `./configure --builddir=DIR` writes config.mk
# both here and into DIR; `make BUILD=DIR …` reads DIR/config.mk, plain
# `make` reads ./config.mk (the last configure run).
#
# ---------------------------------------------------------------------------
# Contract with filter/ffmpeg.mk (owned by the filter work, included below).
# It receives these make variables, all set before it is included:
#
#   BUILD          build directory, relative to the source root (e.g. build)
#   ABS_BUILD      the same, absolute
#   SRCDIR         absolute path of the source root
#   FFMPEG_SRC     absolute path of an FFmpeg tree to use, or empty: then
#                  fetch Debian's ffmpeg source package of FFMPEG_SUITE
#   FFMPEG_SUITE   bookworm | trixie | unstable
#   FFMPEG_BUILD   directory ffmpeg.mk owns for the fetched source, FFmpeg's
#                  configure and its objects   [default $(BUILD)/ffmpeg]
#   FFMPEG_BINDIR  where ffmpeg and ffprobe must land   [default $(BUILD)/bin]
#   LIBMETER_A     $(BUILD)/libmeter.a, the archive ffmpeg links (PIC code)
#   LIBMETER_PC    $(BUILD)/libmeter-uninstalled.pc: with
#                  PKG_CONFIG_PATH=$(ABS_BUILD), `pkg-config libmeter` picks
#                  it up (pkg-config prefers NAME-uninstalled.pc) and yields
#                  -I$(ABS_BUILD)/include (meter.h alone) and
#                  -L$(ABS_BUILD) -l:libmeter.a -lsqlite3 -lpthread
#   CCACHE         "ccache" when found by configure, else empty
#   SANITIZE       sanitizer flags libmeter was built with (empty normally);
#                  a sanitized libmeter.a needs them on ffmpeg's link line
#
# and must define the phony target `ffmpeg` that leaves
# $(FFMPEG_BINDIR)/ffmpeg and $(FFMPEG_BINDIR)/ffprobe built with the filters,
# rebuilding only what changed.  ffmpeg.mk should list $(LIBMETER_A) and
# $(LIBMETER_PC) as prerequisites.  check-ffmpeg-suite/-src run a sub-make
# `make ffmpeg` with FFMPEG_SUITE, FFMPEG_SRC, FFMPEG_BUILD and FFMPEG_BINDIR
# given on its command line, so one ffmpeg.mk serves every tree.
# ---------------------------------------------------------------------------

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:

# ------------------------------------------------------------ configuration --
ifeq ($(origin BUILD),command line)
CONFIG_MK := $(BUILD)/config.mk
else
CONFIG_MK := config.mk
endif

# Goals that work without configure (clean must not require it).
NOCONFIG_GOALS := clean distclean help
ifeq ($(wildcard $(CONFIG_MK)),)
ifneq ($(filter-out $(NOCONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
$(error $(CONFIG_MK) not found: run ./configure first (or scripts/install-deps && ./configure))
endif
BUILD ?= build
else
include $(CONFIG_MK)
endif

SRCDIR    := $(CURDIR)
ABS_BUILD := $(abspath $(BUILD))

# libmeter's version comes from its public header: one place to change it.
VERSION := $(shell sed -n 's/^\#define METER_VERSION_STRING "\(.*\)"/\1/p' metering/meter.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

# Flags every build gets: a user's CFLAGS (from configure or `make
# CFLAGS=…`) choose optimisation, never drop the language level or warnings.
STD_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra
ALL_CFLAGS  = $(STD_CFLAGS) $(CFLAGS) $(SANITIZE) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE)

# ------------------------------------------------------------------ libmeter --
LIB_SRCS   := $(wildcard metering/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIBMETER_A := $(BUILD)/libmeter.a
LIB_SO_REAL := libmeter.so.$(VERSION)
LIB_SONAME  := libmeter.so.$(SOMAJOR)
LIBMETER_SO := $(BUILD)/libmeter.so
LIBMETER_PC := $(BUILD)/libmeter-uninstalled.pc
LIB_LIBS     = $(SQLITE_LIBS) -lpthread

# -fPIC for the archive too: ffmpeg links libmeter.a into libavfilter, which
# may itself be a shared library.
$(BUILD)/obj/metering/%.o: metering/%.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -Imetering $(SQLITE_CFLAGS) -c -o $@ $<

$(LIBMETER_A): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# The shared library exports only the functions named in meter.h: libmeter's
# internal helpers (internal.h) share the meter_ prefix, so a wildcard would
# not do.  The list is every "meter_xxx(" in the header.
$(BUILD)/libmeter.map: metering/meter.h
	@mkdir -p $(@D)
	{ echo '{'; echo '  global:'; \
	  grep -oE '\<meter_[a-z0-9_]+[[:space:]]*\(' metering/meter.h | \
	    sed 's/[[:space:]]*($$//; s/.*/    &;/' | sort -u; \
	  echo '  local: *;'; echo '};'; } >$@

$(BUILD)/$(LIB_SO_REAL): $(LIB_OBJS) $(BUILD)/libmeter.map
	$(CC) -shared -Wl,-soname,$(LIB_SONAME) -Wl,--version-script=$(BUILD)/libmeter.map -Wl,--no-undefined \
	    $(ALL_LDFLAGS) -o $@ $(LIB_OBJS) $(LIB_LIBS)

$(LIBMETER_SO): $(BUILD)/$(LIB_SO_REAL)
	ln -sf $(LIB_SO_REAL) $(BUILD)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $@

# Installed pc file.  `make install` regenerates it with the PREFIX/LIBDIR it
# is given; this copy is for inspection and packaging.
PC_SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	       -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
$(BUILD)/libmeter.pc: libmeter.pc.in metering/meter.h $(CONFIG_MK)
	@mkdir -p $(@D)
	$(PC_SUBST) libmeter.pc.in >$@

# Uninstalled pc file, for FFmpeg's configure (see the contract above): the
# header from the source tree, the static archive from the build directory,
# with SQLite and pthread spelled out because FFmpeg's configure does not
# pass --static to pkg-config.  The archive is named -l:libmeter.a, not by
# its path: FFmpeg's configure moves every word not starting with -l in
# front of the object files, where the linker would skip it; and plain
# -lmeter would pick libmeter.so beside it.  The include directory holds
# meter.h alone, so FFmpeg's compile lines do not see libmeter's internals.
# Replaced only when its content changes: a new pc file makes
# filter/ffmpeg.mk re-run FFmpeg's configure, and most edits of meter.h do
# not change it.
$(BUILD)/include/meter.h: metering/meter.h
	@mkdir -p $(@D)
	cp $< $@

$(LIBMETER_PC): $(BUILD)/include/meter.h $(CONFIG_MK) Makefile
	@mkdir -p $(@D)
	@{ echo 'prefix=$(ABS_BUILD)'; \
	  echo 'libdir=$${prefix}'; \
	  echo 'includedir=$${prefix}/include'; \
	  echo ''; \
	  echo 'Name: libmeter'; \
	  echo 'Description: ffmeter metering library (uninstalled, static)'; \
	  echo 'Version: $(VERSION)'; \
	  echo 'Cflags: -I$${includedir} $(SQLITE_CFLAGS)'; \
	  echo 'Libs: -L$${libdir} -l:libmeter.a $(SQLITE_LIBS) -lpthread'; \
	} >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@ && echo "wrote $@"; fi

# ------------------------------------------------------------------ meterctl --
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
METERCTL := $(BUILD)/bin/meterctl

$(BUILD)/obj/cli/%.o: cli/%.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Icli -Imetering $(JANSSON_CFLAGS) $(SQLITE_CFLAGS) -c -o $@ $<

$(METERCTL): $(CLI_OBJS) $(LIBMETER_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJS) $(LIBMETER_A) $(JANSSON_LIBS) $(LIB_LIBS)

.PHONY: all lib meterctl
lib: $(LIBMETER_A) $(LIBMETER_SO) $(BUILD)/libmeter.pc $(LIBMETER_PC)
meterctl: $(METERCTL)

# --------------------------------------------------------------------- ffmpeg --
FFMPEG_BUILD  ?= $(BUILD)/ffmpeg
FFMPEG_BINDIR ?= $(BUILD)/bin
export CCACHE

# Included whatever ENABLE_FFMPEG says, so `make ffmpeg` and the
# check-ffmpeg-* targets work in a --disable-ffmpeg build too; ENABLE_FFMPEG
# only decides whether `all` and `check` build it.
-include filter/ffmpeg.mk

ifeq ($(ENABLE_FFMPEG),1)
ifeq ($(wildcard filter/ffmpeg.mk),)
$(error ENABLE_FFMPEG=1 but filter/ffmpeg.mk is missing: re-run ./configure --disable-ffmpeg)
endif
FFMPEG_ALL := ffmpeg
endif

all: lib meterctl $(FFMPEG_ALL)

# ---------------------------------------------------------------------- tests --
# Unit tests: tests/unit/test_NAME.c -> $(BUILD)/tests/test_NAME, one file
# each plus the header-only helpers in tests/unit/*.h.  They link the static
# libmeter so they can also reach its internal functions.
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_HDRS := $(wildcard tests/unit/*.h)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
CLI_TESTS    := $(sort $(wildcard tests/cli/*.sh))
FILTER_TESTS := $(sort $(wildcard tests/filter/*.sh))

$(BUILD)/tests/test_%: tests/unit/test_%.c $(UNIT_HDRS) $(LIBMETER_A) $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MF $@.d -MT $@ -Itests/unit -Imetering $(SQLITE_CFLAGS) $(ALL_LDFLAGS) \
	    -o $@ $< $(LIBMETER_A) $(LIB_LIBS) -lm

# The runner gets the binaries it tests by path, never from the environment,
# so a stray FFMPEG/METERCTL in a user's shell cannot change what is tested.
RUN_TESTS = tests/run --build $(BUILD)
TEST_ENV  = METERCTL=$(ABS_BUILD)/bin/meterctl \
	    FFMPEG=$(abspath $(FFMPEG_BINDIR))/ffmpeg FFPROBE=$(abspath $(FFMPEG_BINDIR))/ffprobe

ifeq ($(ENABLE_FFMPEG),1)
CHECK_DEPS  := ffmpeg
CHECK_TESTS := $(UNIT_BINS) $(CLI_TESTS) $(FILTER_TESTS)
CHECK_NOTE  :=
else
CHECK_DEPS  :=
CHECK_TESTS := $(UNIT_BINS) $(CLI_TESTS)
CHECK_NOTE  := --not-run "filter tests (tests/filter, $(words $(FILTER_TESTS)) files): configured --disable-ffmpeg"
endif

.PHONY: check check-unit check-cli check-filter check-ffmpeg-suite check-ffmpeg-src tests
tests: $(UNIT_BINS)

check: $(UNIT_BINS) $(METERCTL) $(CHECK_DEPS)
	$(TEST_ENV) $(RUN_TESTS) $(CHECK_NOTE) $(CHECK_TESTS)

check-unit: $(UNIT_BINS)
	$(TEST_ENV) $(RUN_TESTS) $(UNIT_BINS)

check-cli: $(METERCTL)
	$(TEST_ENV) $(RUN_TESTS) $(CLI_TESTS)

ifeq ($(ENABLE_FFMPEG),1)
check-filter: $(METERCTL) ffmpeg
	$(TEST_ENV) $(RUN_TESTS) $(FILTER_TESTS)
else
check-filter:
	@echo "check-filter: configured with --disable-ffmpeg (make check-ffmpeg-suite SUITE=… still works)" >&2; exit 2
endif

# Filter tests against another FFmpeg: a sub-make builds it in its own
# directory ($(BUILD)/ffmpeg-SUITE or $(BUILD)/ffmpeg-src-NAME, with bin/
# inside), then the runner points FFMPEG/FFPROBE there; logs go to
# $(BUILD)/ffmpeg-NAME/logs so they do not overwrite the default tree's.
# $(call ffmpeg_other,NAME,SUITE,SRC)
define ffmpeg_other
	+$(MAKE) ffmpeg FFMPEG_SUITE=$(2) FFMPEG_SRC=$(3) \
	    FFMPEG_BUILD=$(BUILD)/ffmpeg-$(1) FFMPEG_BINDIR=$(BUILD)/ffmpeg-$(1)/bin
	METERCTL=$(ABS_BUILD)/bin/meterctl \
	FFMPEG=$(ABS_BUILD)/ffmpeg-$(1)/bin/ffmpeg FFPROBE=$(ABS_BUILD)/ffmpeg-$(1)/bin/ffprobe \
	    $(RUN_TESTS) --logs $(BUILD)/ffmpeg-$(1)/logs $(FILTER_TESTS)
endef

check-ffmpeg-suite: $(METERCTL) $(LIBMETER_A) $(LIBMETER_PC)
	@case "$(SUITE)" in bookworm|trixie|unstable) ;; \
	  *) echo "usage: make check-ffmpeg-suite SUITE=bookworm|trixie|unstable" >&2; exit 2 ;; esac
	$(call ffmpeg_other,$(SUITE),$(SUITE),)

check-ffmpeg-src: $(METERCTL) $(LIBMETER_A) $(LIBMETER_PC)
	@test -f "$(SRC)/libavfilter/allfilters.c" || \
	  { echo "usage: make check-ffmpeg-src SRC=/path/to/ffmpeg-source-tree" >&2; exit 2; }
	$(call ffmpeg_other,src-$(notdir $(abspath $(SRC))),$(FFMPEG_SUITE),$(abspath $(SRC)))

# -------------------------------------------------------------- other rooms --
# sync/ and ledger/ bring their own rules, like filter/ffmpeg.mk.  Included
# here, after the libmeter, meterctl and tests sections, so they may use
# (and add to) what those define: BUILD, ABS_BUILD, CC, AR, ALL_CFLAGS,
# ALL_LDFLAGS, CONFIG_MK, LIBMETER_A, LIB_LIBS, METERCTL, UNIT_HDRS,
# RUN_TESTS, TEST_ENV, CHECK_TESTS (`check` expands it when it runs) and the
# `tests` and `check` targets (as extra prerequisites), plus config.mk's
# *_CFLAGS/*_LIBS/HAVE_*.
-include sync/sync.mk ledger/ledger.mk bench/bench.mk
# after ledger.mk: the end-to-end tests use LEDGERD and its TEST_ENV entry
-include tests/e2e/e2e.mk
# the load suite (make check-load; not part of check), after e2e.mk likewise
-include tests/load/load.mk
# after e2e.mk: the fault suites (kill storm, full disk) add to CHECK_TESTS
-include tests/faults/faults.mk
# after ledger.mk: the console's headless browser test (npm ci of playwright-core)
-include tests/console/console.mk
# after e2e.mk: farm mode's drain tests (issue 7) add to CHECK_TESTS
-include tests/farm/farm.mk
# libFuzzer harnesses, built with clang into $(BUILD)/fuzz (make fuzz)
-include tests/fuzz/fuzz.mk

# ----------------------------------------------------------------------- demo --
.PHONY: demo
demo: all
	BUILD=$(ABS_BUILD) ENABLE_FFMPEG=$(ENABLE_FFMPEG) scripts/demo

# -------------------------------------------------------------------- install --
# No ldconfig here: with DESTDIR this is a staging install for packaging.
.PHONY: install uninstall
install: lib meterctl
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR)
	install -m 644 $(LIBMETER_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/$(LIB_SO_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf $(LIB_SO_REAL) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libmeter.so
	$(PC_SUBST) libmeter.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/libmeter.pc
	install -m 644 metering/meter.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(METERCTL) $(DESTDIR)$(BINDIR)/
	if [ -f doc/meterctl.1 ]; then \
	    install -d $(DESTDIR)$(MANDIR)/man1 && \
	    install -m 644 doc/meterctl.1 $(DESTDIR)$(MANDIR)/man1/; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmeter.a $(DESTDIR)$(LIBDIR)/$(LIB_SO_REAL) \
	      $(DESTDIR)$(LIBDIR)/$(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libmeter.so \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libmeter.pc $(DESTDIR)$(INCLUDEDIR)/meter.h \
	      $(DESTDIR)$(BINDIR)/meterctl $(DESTDIR)$(MANDIR)/man1/meterctl.1

# ---------------------------------------------------------------------- clean --
# `clean` removes what the C sources build (objects, libraries, programs,
# tests) and keeps the FFmpeg trees under $(BUILD) with bin/ffmpeg and
# bin/ffprobe (fetched sources and minutes of compiling; ffmpeg relinks when
# libmeter changes).  `distclean` removes the whole build directory and
# config.mk.
.PHONY: clean distclean help
clean:
	rm -rf $(BUILD)/obj $(BUILD)/gen $(BUILD)/tests $(BUILD)/include $(BUILD)/lib*.* \
	       $(filter-out %/ffmpeg %/ffprobe,$(wildcard $(BUILD)/bin/*))

distclean:
	rm -rf $(BUILD) config.mk

help:
	@sed -n '3,16s/^# \{0,1\}//p' Makefile

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d)
