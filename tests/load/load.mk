# tests/load/load.mk — the load suite (GNU make; -include'd by the top
# Makefile after tests/e2e/e2e.mk: it uses BUILD, CC, STD_CFLAGS, CFLAGS,
# ALL_CFLAGS, ALL_LDFLAGS, CONFIG_MK, LIBMETER_A, LIB_LIBS, SQLITE_CFLAGS,
# CURL_CFLAGS, METERCTL, LEDGERD, RUN_TESTS, TEST_ENV).
#
#   tests/load/*.sh       TAP shell tests, one per ledger backend: 8 nodes
#                         sync 20 000 records each at once while an admin
#                         reads the console's endpoints; everything lands
#                         exactly once, figures as "# " lines
#   $(BUILD)/tests/load/loadgen      fills a node database through meter.h
#   $(BUILD)/tests/load/curltime.so  LD_PRELOAD shim timing meterctl's requests
#   make check-load       runs them (not part of `make check`: a few minutes;
#                         .ci/run has a stage for it).  LOAD_RECORDS=N
#                         (records per node, default 20000) and LOAD_NODES=N
#                         (default 8) scale it for a quick run by hand.
#
# Not in `make check`: it is a budgeted stress run, not a correctness test
# a newcomer needs, and it wants the normal build (a sanitized one measures
# the sanitizer).

LOAD_TESTS   := $(sort $(wildcard tests/load/*.sh))
LOAD_GEN     := $(BUILD)/tests/load/loadgen
LOAD_SHIM    := $(BUILD)/tests/load/curltime.so

ifeq ($(HAVE_CURL)$(HAVE_CRYPTO)$(HAVE_MHD)$(HAVE_PQ),1111)

$(LOAD_GEN): tests/load/loadgen.c $(LIBMETER_A) $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MF $@.d -MT $@ -Imetering $(SQLITE_CFLAGS) $(ALL_LDFLAGS) \
	    -o $@ $< $(LIBMETER_A) $(LIB_LIBS)

# Not sanitized: it is preloaded into meterctl, ahead of any sanitizer
# runtime (as tests/e2e/clockshift.so).
$(LOAD_SHIM): tests/load/curltime.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(STD_CFLAGS) $(CFLAGS) $(CURL_CFLAGS) -shared -fPIC -o $@ $< -ldl

.PHONY: check-load
tests: $(LOAD_GEN) $(LOAD_SHIM)

check-load: $(METERCTL) $(LEDGERD) $(LOAD_GEN) $(LOAD_SHIM)
	$(TEST_ENV) $(RUN_TESTS) $(LOAD_TESTS)

else

.PHONY: check-load
check-load:
	@echo "check-load: needs libcurl, libcrypto, libmicrohttpd and libpq (scripts/install-deps, ./configure)" >&2; exit 2

endif

-include $(LOAD_GEN).d
