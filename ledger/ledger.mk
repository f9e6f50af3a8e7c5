# ledger/ledger.mk — meter-ledgerd, the central ledger (-include'd by the top
# Makefile after its libmeter, meterctl and tests sections; uses BUILD,
# ABS_BUILD, CC, AR, ALL_CFLAGS, ALL_LDFLAGS, LIBMETER_A, CONFIG_MK,
# RUN_TESTS, TEST_ENV and the *_CFLAGS/*_LIBS/HAVE_* of config.mk, and adds
# to all, tests, check, CHECK_TESTS and TEST_ENV).
#
#   make ledger          $(BUILD)/bin/meter-ledgerd
#   make check-ledger    the ledger's tests (tests/ledger/), SQLite and
#                        PostgreSQL (scripts/start-postgres provides one)
#
# Layout: every ledger/*.c but main.c goes into $(BUILD)/libledger.a, which
# the daemon and the C tests link; the console (ledger/console/*) is
# compiled into the binary as byte arrays (ledger/embed.sh, needs only od
# and sed); sync/protocol.c, the wire codec, is compiled here under
# $(BUILD)/obj/ledger/ so it does not depend on how sync/ is built.

LEDGERD         := $(BUILD)/bin/meter-ledgerd
LEDGER_A        := $(BUILD)/libledger.a
LEDGER_SRCS     := $(filter-out ledger/main.c,$(wildcard ledger/*.c))
LEDGER_OBJS     := $(LEDGER_SRCS:%.c=$(BUILD)/obj/%.o) \
                   $(BUILD)/obj/ledger/sync_protocol.o $(BUILD)/obj/ledger/console_data.o
LEDGER_MAIN_OBJ := $(BUILD)/obj/ledger/main.o
LEDGER_CONSOLE  := $(sort $(wildcard ledger/console/*))
LEDGER_CFLAGS    = -Iledger -Isync -Imetering $(MHD_CFLAGS) $(PQ_CFLAGS) $(SQLITE_CFLAGS) \
                   $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
LEDGER_LIBS      = $(MHD_LIBS) $(PQ_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS) $(SQLITE_LIBS) -lpthread

LEDGER_TEST_SRCS := $(wildcard tests/ledger/test_*.c)
LEDGER_TEST_BINS := $(LEDGER_TEST_SRCS:tests/ledger/%.c=$(BUILD)/tests/ledger/%)
# What the runner executes: the shell tests (they run the C test binaries
# with a backend argument, and the daemon).
LEDGER_TESTS     := $(sort $(wildcard tests/ledger/*.sh))

ifeq ($(HAVE_MHD)$(HAVE_PQ)$(HAVE_CRYPTO),111)

$(BUILD)/obj/ledger/%.o: ledger/%.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LEDGER_CFLAGS) -c -o $@ $<

$(BUILD)/obj/ledger/sync_protocol.o: sync/protocol.c sync/protocol.h $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LEDGER_CFLAGS) -c -o $@ $<

$(BUILD)/gen/ledger/console_data.c: ledger/embed.sh $(LEDGER_CONSOLE)
	@mkdir -p $(@D)
	sh ledger/embed.sh $(LEDGER_CONSOLE) >$@

$(BUILD)/obj/ledger/console_data.o: $(BUILD)/gen/ledger/console_data.c ledger/console.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Iledger -c -o $@ $<

$(LEDGER_A): $(LEDGER_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(LEDGERD): $(LEDGER_MAIN_OBJ) $(LEDGER_A) $(LIBMETER_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(LEDGER_MAIN_OBJ) $(LEDGER_A) $(LIBMETER_A) $(LEDGER_LIBS)

$(BUILD)/tests/ledger/test_%: tests/ledger/test_%.c $(LEDGER_A) $(LIBMETER_A) $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MF $@.d -MT $@ $(LEDGER_CFLAGS) -Itests/unit $(ALL_LDFLAGS) \
	    -o $@ $< $(LEDGER_A) $(LIBMETER_A) $(LEDGER_LIBS) -lm

.PHONY: ledger check-ledger
ledger: $(LEDGERD)

check-ledger: $(LEDGERD) $(LEDGER_TEST_BINS)
	$(TEST_ENV) $(RUN_TESTS) $(LEDGER_TESTS)

# With everything else: `all` builds the daemon, `make check` runs the
# ledger's tests (the runner gets the binary by path, like METERCTL).
all: $(LEDGERD)
tests: $(LEDGER_TEST_BINS)
check: $(LEDGERD) $(LEDGER_TEST_BINS)
CHECK_TESTS += $(LEDGER_TESTS)
TEST_ENV += LEDGERD=$(ABS_BUILD)/bin/meter-ledgerd

# make install / uninstall also carry the daemon, its man page and examples.
.PHONY: install-ledger uninstall-ledger
install: install-ledger
install-ledger: $(LEDGERD)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(PREFIX)/share/ffmeter
	install -m 755 $(LEDGERD) $(DESTDIR)$(BINDIR)/
	install -m 644 doc/meter-ledgerd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 ledger/meter-ledgerd.service ledger/meter-ledgerd.conf.example \
	    $(DESTDIR)$(PREFIX)/share/ffmeter/
uninstall: uninstall-ledger
uninstall-ledger:
	rm -f $(DESTDIR)$(BINDIR)/meter-ledgerd $(DESTDIR)$(MANDIR)/man8/meter-ledgerd.8 \
	      $(DESTDIR)$(PREFIX)/share/ffmeter/meter-ledgerd.service \
	      $(DESTDIR)$(PREFIX)/share/ffmeter/meter-ledgerd.conf.example

-include $(LEDGER_OBJS:.o=.d) $(LEDGER_MAIN_OBJ:.o=.d) $(LEDGER_TEST_BINS:=.d)

else

.PHONY: ledger check-ledger
ledger check-ledger:
	@echo "meter-ledgerd needs libmicrohttpd, libpq and libcrypto (configure found" \
	      "MHD=$(HAVE_MHD) PQ=$(HAVE_PQ) CRYPTO=$(HAVE_CRYPTO)): run scripts/install-deps" \
	      "and ./configure" >&2; exit 1

endif
