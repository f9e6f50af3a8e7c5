# bench/bench.mk — ffmeter's benchmarks (GNU make), included by the top
# Makefile after filter/ffmpeg.mk, so BUILD, CONFIG_MK, ALL_CFLAGS,
# ALL_LDFLAGS, LIBMETER_A, LIB_LIBS, SQLITE_CFLAGS, FFMPEG_BINDIR, METERCTL
# and ENABLE_FFMPEG are set.  Benchmarks print figures and never fail on
# time.
#
#   make bench          both benchmarks
#   make bench-record   libmeter: meter_record() and sessions [BENCH_RECORD_ARGS=-q]
#   make bench-filter   the meter filter's cost on a transcode (needs ffmpeg)
#   make bench-lease    the ledger's lease round trips (acquire, renew, release
#                       p50/p99) and reservations/s with 8 nodes asking at once,
#                       SQLite and PostgreSQL [BENCH_LEASE_ARGS=-q]; not in `bench`
#
# Temporary databases go under $BENCH_TMP (else $TMPDIR, else /tmp).

BENCH_RECORD := $(BUILD)/bench/bench_record
BENCH_RECORD_ARGS ?=
BENCH_FILTER_ARGS ?=
BENCH_LEASE_ARGS ?=

$(BENCH_RECORD): bench/bench_record.c $(LIBMETER_A) $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MF $@.d -MT $@ -Imetering $(SQLITE_CFLAGS) $(ALL_LDFLAGS) \
	    -o $@ $< $(LIBMETER_A) $(LIB_LIBS)

# With ffmpeg enabled, bench-filter builds it first (as check does);
# otherwise the script looks for it and says why it skips when absent.
ifeq ($(ENABLE_FFMPEG),1)
BENCH_FILTER_DEPS := ffmpeg
endif

.PHONY: bench bench-record bench-filter bench-lease
RUN_BENCH_RECORD = $(BENCH_RECORD) $(BENCH_RECORD_ARGS)
RUN_BENCH_FILTER = FFMPEG=$(abspath $(FFMPEG_BINDIR))/ffmpeg METERCTL=$(abspath $(METERCTL)) \
	bench/bench_filter.sh $(BENCH_FILTER_ARGS)

# The prerequisites may build in parallel (make -j); the benchmarks run one
# after the other in one recipe, so they never time each other.
bench: $(BENCH_RECORD) $(METERCTL) $(BENCH_FILTER_DEPS)
	$(RUN_BENCH_RECORD)
	$(RUN_BENCH_FILTER)

bench-record: $(BENCH_RECORD)
	$(RUN_BENCH_RECORD)

bench-filter: $(METERCTL) $(BENCH_FILTER_DEPS)
	$(RUN_BENCH_FILTER)

# Needs the ledger (and PostgreSQL: $$LEDGER_PG_URL or scripts/start-postgres).
bench-lease: $(LEDGERD)
	LEDGERD=$(abspath $(LEDGERD)) bench/bench_lease $(BENCH_LEASE_ARGS)

# `clean` gets one more prerequisite (its recipe stays in the Makefile).
.PHONY: clean-bench
clean: clean-bench
clean-bench:
	rm -rf $(BUILD)/bench

-include $(BENCH_RECORD).d
