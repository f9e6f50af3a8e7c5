# tests/fuzz/fuzz.mk — libFuzzer harnesses for every parser that takes
# outside input (GNU make; -include'd by the top Makefile after sync.mk,
# ledger.mk and e2e.mk: it uses BUILD, CONFIG_MK, CCACHE, the *_CFLAGS /
# *_LIBS / HAVE_* of config.mk and the console rule of ledger.mk).
#
#   make fuzz FUZZ_SECONDS=N   runs each target N seconds (default 60) from
#                              its seed corpus plus what earlier runs found,
#                              prints executions and crashes per target and
#                              the total; exit status 1 on any crash
#   make check-fuzz            the short run CI does (CHECK_FUZZ_SECONDS=10
#                              each; the seed corpus, with its regression
#                              inputs, runs first)
#   make fuzz-build            only builds $(BUILD)/fuzz/fuzz_TARGET
#   make fuzz FUZZ_TARGETS='protocol time' …   a subset
#
# Everything here is compiled with clang (FUZZ_CC, whatever CC is) and
# -fsanitize=fuzzer,address,undefined into $(BUILD)/fuzz/ alone: the normal
# build's objects and flags are untouched.  The sources of the libraries
# under test are compiled again there with the sanitizers and coverage.
# tests/fuzz/README.md says what each target feeds and records the runs.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -g -O1 -fno-omit-frame-pointer \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -Imetering -Isync -Iledger -Icli -Itests/fuzz -I$(BUILD)/gen/ledger \
                $(SQLITE_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS) $(MHD_CFLAGS) $(PQ_CFLAGS)
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer

# Which sources each harness links, beside libmeter (every metering/*.c).
FUZZ_LIB_SRCS := $(wildcard metering/*.c)
fuzz_srcs_protocol      := sync/protocol.c
fuzz_srcs_sync_config   := sync/config.c sync/protocol.c
fuzz_srcs_ledger_config := ledger/config.c sync/protocol.c
fuzz_srcs_time          := cli/args.c sync/protocol.c
fuzz_srcs_rates         :=
fuzz_srcs_filter_opts   := sync/protocol.c
fuzz_srcs_spool         := sync/protocol.c
fuzz_srcs_ledger_http   := $(filter-out ledger/main.c,$(wildcard ledger/*.c)) sync/protocol.c \
                           $(BUILD)/gen/ledger/console_data.c
fuzz_libs_protocol      := $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz_libs_sync_config   := $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz_libs_ledger_config := $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz_libs_time          := $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz_libs_filter_opts   := $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz_libs_spool         := $(JANSSON_LIBS) $(CRYPTO_LIBS)
fuzz_libs_ledger_http   := $(MHD_LIBS) $(PQ_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS)

# The protocol's codec needs jansson and libcrypto, the ledger also
# libmicrohttpd and libpq (configure's HAVE_*; Debian has them all).
ifeq ($(HAVE_CRYPTO),1)
FUZZ_ALL := protocol sync_config ledger_config time rates filter_opts spool
else
FUZZ_ALL := rates
endif
ifeq ($(HAVE_MHD)$(HAVE_PQ)$(HAVE_CRYPTO),111)
FUZZ_ALL += ledger_http
endif
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

# Objects: $(FUZZ_DIR)/obj/<source path>.o, for sources in the tree and the
# generated console file alike.
fuzz_obj = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(patsubst $(BUILD)/gen/%,gen/%,$(1)))
FUZZ_LIB_OBJS := $(call fuzz_obj,$(FUZZ_LIB_SRCS))

$(FUZZ_DIR)/obj/%.o: %.c $(CONFIG_MK) tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(CCACHE) $(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/obj/gen/%.o: $(BUILD)/gen/%.c $(CONFIG_MK)
	@mkdir -p $(@D)
	$(CCACHE) $(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# $(call fuzz_target,NAME): the link rule of $(FUZZ_DIR)/fuzz_NAME.
define fuzz_target
$(FUZZ_DIR)/fuzz_$(1): $(call fuzz_obj,tests/fuzz/fuzz_$(1).c $(fuzz_srcs_$(1))) $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $$@ $$^ $(fuzz_libs_$(1)) $(SQLITE_LIBS) -lpthread -lm
endef
$(foreach t,$(FUZZ_ALL),$(eval $(call fuzz_target,$(t))))

# Without clang (or its libFuzzer runtime) the targets say so and stop.
.PHONY: fuzz fuzz-build check-fuzz clean-fuzz fuzz-cc
fuzz-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { echo "make fuzz: needs $(FUZZ_CC) and" \
	    "libFuzzer (Debian: clang libclang-rt-dev; scripts/install-deps installs them)" >&2; \
	    exit 1; }

$(FUZZ_BINS): | fuzz-cc
fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	sh tests/fuzz/run-fuzz --build $(BUILD) --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# CI's budget: 8 targets × CHECK_FUZZ_SECONDS, plus the build.
CHECK_FUZZ_SECONDS ?= 10
check-fuzz: $(FUZZ_BINS)
	sh tests/fuzz/run-fuzz --build $(BUILD) --seconds $(CHECK_FUZZ_SECONDS) $(FUZZ_TARGETS)

# `make clean` keeps the corpora grown under $(BUILD)/fuzz/corpus.
clean: clean-fuzz
clean-fuzz:
	rm -rf $(FUZZ_DIR)/obj $(FUZZ_BINS)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
