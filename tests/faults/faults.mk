# tests/faults/faults.mk — the fault suites that print figures (GNU make;
# -include'd by the top Makefile after tests/e2e/e2e.mk: it uses BUILD, CC,
# STD_CFLAGS, CFLAGS, CONFIG_MK, SQLITE_CFLAGS, SQLITE_LIBS, METERCTL,
# LEDGERD, RUN_TESTS, TEST_ENV, CHECK_NOTE and adds to tests, check and
# CHECK_TESTS).
#
#   tests/faults/killstorm.sh        100 SIGKILLs into 8 concurrent metered
#                                    ffmpeg jobs, then reap (needs ffmpeg)
#   tests/faults/diskfull.sh         the node database on a disk that fills
#                                    up (tmpfs) and on a disk whose Nth write
#                                    fails (faultvfs.so), with on_error=spool
#                                    (needs ffmpeg)
#   tests/faults/diskfull_ledger.sh  the ledger's SQLite file failing writes
#                                    and on a full tmpfs; the node's sync
#                                    retries (needs the ledger and sync)
#   $(BUILD)/tests/faults/faultvfs.so
#                                    LD_PRELOAD shim: an SQLite VFS failing
#                                    the Nth write, or slow syncs
#   make check-faults                runs just these
#
# Each suite is bounded (about a minute or two on 2 cores) and prints its
# figures as TAP diagnostics ("# kills: 100, jobs: …") in its log under
# $(BUILD)/tests/logs/faults/; check-faults shows them after the run.

FAULT_FF_TESTS     := $(wildcard tests/faults/killstorm.sh tests/faults/diskfull.sh)
FAULT_LEDGER_TESTS := $(wildcard tests/faults/diskfull_ledger.sh)
FAULT_SHIM         := $(BUILD)/tests/faults/faultvfs.so

# Not sanitized, like the e2e clock shim: it is preloaded into programs
# that may not be (ffmpeg), ahead of any sanitizer runtime.
$(FAULT_SHIM): tests/faults/faultvfs.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(STD_CFLAGS) $(CFLAGS) $(SQLITE_CFLAGS) -shared -fPIC -o $@ $< $(SQLITE_LIBS) -lpthread

tests: $(FAULT_SHIM)
check: $(FAULT_SHIM)

FAULT_TESTS :=
ifeq ($(ENABLE_FFMPEG),1)
FAULT_TESTS += $(FAULT_FF_TESTS)
else
CHECK_NOTE += --not-run "fault suites with ffmpeg ($(FAULT_FF_TESTS)): configured --disable-ffmpeg"
endif
ifeq ($(HAVE_CURL)$(HAVE_CRYPTO)$(HAVE_MHD)$(HAVE_PQ),1111)
FAULT_TESTS += $(FAULT_LEDGER_TESTS)
check: $(LEDGERD)
else
CHECK_NOTE += --not-run "ledger fault suite ($(FAULT_LEDGER_TESTS)): configured without libcurl, libcrypto, libmicrohttpd or libpq"
endif
CHECK_TESTS += $(FAULT_TESTS)

.PHONY: check-faults
check-faults: $(METERCTL) $(FAULT_SHIM) $(if $(filter $(FAULT_LEDGER_TESTS),$(FAULT_TESTS)),$(LEDGERD)) \
              $(if $(filter $(FAULT_FF_TESTS),$(FAULT_TESTS)),ffmpeg)
	@test -n "$(FAULT_TESTS)" || { echo "check-faults: nothing to run (see ./configure)" >&2; exit 2; }
	@rc=0; $(TEST_ENV) $(RUN_TESTS) $(FAULT_TESTS) || rc=$$?; \
	  echo "fault figures:"; \
	  for t in $(notdir $(FAULT_TESTS:.sh=)); do \
	    sed -n 's/^# figures: /  '"$$t"': /p' $(BUILD)/tests/logs/faults/$$t.log 2>/dev/null; \
	  done; exit $$rc
