# tests/e2e/e2e.mk — the end-to-end, fault and security tests of sync and
# the ledger (GNU make; -include'd by the top Makefile AFTER sync/sync.mk and
# ledger/ledger.mk: it uses BUILD, CC, STD_CFLAGS, CFLAGS, CONFIG_MK,
# METERCTL, LEDGERD, RUN_TESTS, TEST_ENV and adds to tests, check and
# CHECK_TESTS).
#
#   tests/e2e/*.sh        TAP shell tests, each on one ledger backend
#                         (*_sqlite.sh, *_pg.sh: PostgreSQL from
#                         scripts/start-postgres or $LEDGER_PG_URL; none is a
#                         failure): the real meter-ledgerd, meterctl nodes and
#                         tests/tools/faultproxy.py, all on 127.0.0.1
#   $(BUILD)/tests/e2e/clockshift.so
#                         LD_PRELOAD shim moving meterctl's wall clock (the
#                         security tests' "node whose clock is off")
#   make check-e2e        runs just these
#
# They need both ends: meterctl with sync (libcurl, libcrypto) and the
# ledger (libmicrohttpd, libpq, libcrypto).

E2E_TESTS := $(sort $(wildcard tests/e2e/*.sh))
E2E_SHIM  := $(BUILD)/tests/e2e/clockshift.so

ifeq ($(HAVE_CURL)$(HAVE_CRYPTO)$(HAVE_MHD)$(HAVE_PQ),1111)

# Not sanitized: it is preloaded into meterctl, ahead of any sanitizer
# runtime (the test tells ASan not to mind the order).
$(E2E_SHIM): tests/e2e/clockshift.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(STD_CFLAGS) $(CFLAGS) -shared -fPIC -o $@ $< -ldl

.PHONY: check-e2e
tests: $(E2E_SHIM)
check: $(E2E_SHIM) $(LEDGERD)
CHECK_TESTS += $(E2E_TESTS)

check-e2e: $(METERCTL) $(LEDGERD) $(E2E_SHIM)
	$(TEST_ENV) $(RUN_TESTS) $(E2E_TESTS)

else

CHECK_NOTE += --not-run "end-to-end tests (tests/e2e, $(words $(E2E_TESTS)) files): configured without libcurl, libcrypto, libmicrohttpd or libpq"

.PHONY: check-e2e
check-e2e:
	@echo "check-e2e: needs libcurl, libcrypto, libmicrohttpd and libpq (scripts/install-deps, ./configure)" >&2; exit 2

endif
