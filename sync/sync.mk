# sync/sync.mk — the node's sync client (GNU make; -include'd by the top
# Makefile AFTER its meterctl and tests sections, since it adds to METERCTL,
# CHECK_TESTS and the check targets defined there).
#
#   $(BUILD)/libmetersync.a    sync/*.c: protocol codec + libcurl client
#   meterctl                   cli/cmd_sync.c sees sync/; the link adds the
#                              archive, libcurl, libcrypto
#   $(BUILD)/tests/test_sync_* tests/sync/test_sync_*.c (TAP), and
#   tests/sync/*.sh            loopback smoke tests (python3 responder)
#   make check-sync            runs just those
#
# The ledger needs only sync/protocol.c (jansson + libcrypto): it may link
# $(LIBMETERSYNC_A) (the linker takes protocol.o alone when nothing else is
# referenced) or compile $(SYNC_PROTO_SRC) itself.
#
# Without libcurl or libcrypto (configure: HAVE_CURL/HAVE_CRYPTO != 1)
# nothing here is built; `meterctl sync` then says so, and `sync status`,
# `sync quarantine` and `sync release` still work (they need libmeter only).

SYNC_PROTO_SRC := sync/protocol.c
SYNC_SRCS      := $(wildcard sync/*.c)
SYNC_OBJS      := $(SYNC_SRCS:%.c=$(BUILD)/obj/%.o)
LIBMETERSYNC_A := $(BUILD)/libmetersync.a
SYNC_CFLAGS     = -Isync -Imetering $(JANSSON_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
SYNC_LIBS       = $(CURL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS)

SYNC_TEST_SRCS := $(wildcard tests/sync/test_*.c)
SYNC_TEST_BINS := $(SYNC_TEST_SRCS:tests/sync/%.c=$(BUILD)/tests/%)
SYNC_TEST_SH   := $(sort $(wildcard tests/sync/*.sh))

ifeq ($(HAVE_CURL)$(HAVE_CRYPTO),11)

# -fPIC like libmeter's objects, so the archive can go into a shared object.
$(BUILD)/obj/sync/%.o: sync/%.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC $(SYNC_CFLAGS) -c -o $@ $<

$(LIBMETERSYNC_A): $(SYNC_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# meterctl: the sync command compiles against sync.h and curl-free headers;
# the link appends the archive and its libraries after libmeter (the
# archive calls libmeter, so libmeter follows it again).
$(BUILD)/obj/cli/cmd_sync.o: ALL_CFLAGS += -Isync
# cmd_sync.c compiles a stub when sync.h is not on its include path (a
# build without this file): an object older than the archive may be that
# stub, so it is rebuilt.
$(BUILD)/obj/cli/cmd_sync.o: $(LIBMETERSYNC_A)
$(METERCTL): $(LIBMETERSYNC_A)
$(METERCTL): LIB_LIBS += $(LIBMETERSYNC_A) $(LIBMETER_A) $(SYNC_LIBS) $(SQLITE_LIBS) -lpthread

# Unit tests: one file each, linked with the archive and libmeter.
$(SYNC_TEST_BINS): $(BUILD)/tests/%: tests/sync/%.c $(UNIT_HDRS) $(LIBMETERSYNC_A) $(LIBMETER_A) $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MF $@.d -MT $@ -Itests/unit $(SYNC_CFLAGS) $(SQLITE_CFLAGS) $(ALL_LDFLAGS) \
	    -o $@ $< $(LIBMETERSYNC_A) $(LIBMETER_A) $(SYNC_LIBS) $(LIB_LIBS) -lm

.PHONY: libmetersync check-sync
libmetersync: $(LIBMETERSYNC_A)
tests: $(SYNC_TEST_BINS)

check-sync: $(SYNC_TEST_BINS) $(METERCTL)
	$(TEST_ENV) $(RUN_TESTS) $(SYNC_TEST_BINS) $(SYNC_TEST_SH)

# `make check` runs them with everything else.
check: $(SYNC_TEST_BINS)
CHECK_TESTS += $(SYNC_TEST_BINS) $(SYNC_TEST_SH)

-include $(SYNC_OBJS:.o=.d) $(SYNC_TEST_BINS:=.d)

else

$(BUILD)/obj/cli/cmd_sync.o: ALL_CFLAGS += -Isync -DMETERCTL_NO_SYNC

.PHONY: check-sync
check-sync:
	@echo "check-sync: configured without libcurl or libcrypto" >&2; exit 2

endif

# `make clean` removes the archive too (objects and tests go with obj/, tests/).
.PHONY: clean-sync
clean: clean-sync
clean-sync:
	rm -f $(LIBMETERSYNC_A)
