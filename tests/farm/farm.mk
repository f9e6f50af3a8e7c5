# tests/farm/farm.mk — farm mode's drain tests, issue 7 (GNU make;
# -include'd by the top Makefile after tests/e2e/e2e.mk: it uses BUILD,
# METERCTL, LEDGERD, RUN_TESTS, TEST_ENV, ENABLE_FFMPEG, CHECK_NOTE and adds to
# check and CHECK_TESTS).
#
#   tests/farm/drain_{sqlite,pg}.sh   8 node processes spend one account's
#                         only pooled pack (100 minutes) through leases:
#                         record loops and a real ffmpeg with the filter,
#                         syncing every second; postings add up to exactly
#                         100 minutes, never below zero, overage only once
#                         nothing was free, both verifies pass, every node
#                         equals the ledger to the µs
#   tests/farm/faults_{sqlite,pg}.sh  the same drain through a ledger kill -9
#                         and restart, a node killed -9 holding a lease, a
#                         node cut off past its lease's expiry reporting late
#   tests/farm/starve_sqlite.sh       a busy node (its outbox never empty)
#                         must still be granted a lease (one node, a
#                         slow ledger through faultproxy.py)
#   tests/farm/twoledgers_pg.sh       two meter-ledgerd on one PostgreSQL
#                         serving the 8 nodes: nothing reserved twice
#   make check-farm       runs just these (also part of `make check`);
#                         about a minute each on 2 cores
#
# They need both ends (sync and the ledger) and ffmpeg with the filter.

FARM_TESTS := $(sort $(wildcard tests/farm/*.sh))

ifeq ($(HAVE_CURL)$(HAVE_CRYPTO)$(HAVE_MHD)$(HAVE_PQ)$(ENABLE_FFMPEG),11111)

.PHONY: check-farm
check: $(LEDGERD)
CHECK_TESTS += $(FARM_TESTS)

check-farm: $(METERCTL) $(LEDGERD) ffmpeg
	$(TEST_ENV) $(RUN_TESTS) $(FARM_TESTS)

else

CHECK_NOTE += --not-run "farm drain tests (tests/farm, $(words $(FARM_TESTS)) files): need libcurl, libcrypto, libmicrohttpd, libpq and ffmpeg"

.PHONY: check-farm
check-farm:
	@echo "check-farm: needs libcurl, libcrypto, libmicrohttpd, libpq (scripts/install-deps, ./configure) and ffmpeg (not --disable-ffmpeg)" >&2; exit 2

endif
