# tests/console/console.mk — the ledger console's headless browser test
# (GNU make; -include'd by the top Makefile AFTER ledger/ledger.mk: it uses
# BUILD, ABS_BUILD, LEDGERD, RUN_TESTS, TEST_ENV and adds to check,
# CHECK_TESTS and TEST_ENV).
#
#   tests/console/*.sh    TAP tests: the real meter-ledgerd on 127.0.0.1 with
#                         prepared data, the console driven by Debian's
#                         chromium (/usr/bin/chromium, scripts/install-deps)
#                         through playwright-core
#   $(BUILD)/tests/console/npm/node_modules
#                         playwright-core, pinned in tests/console/package.json
#                         and package-lock.json, installed with `npm ci`
#                         (never a browser download: playwright-core has none)
#   make check-console    runs just these
#
# When npm ci fails (no npm, no registry) the rule says so and goes on: the
# test then FAILS ("playwright-core is installed"), it never skips, and the
# rest of `make check` still runs and reports.

CONSOLE_TESTS := $(sort $(wildcard tests/console/*.sh))
CONSOLE_NPM   := $(BUILD)/tests/console/npm
CONSOLE_PW    := $(CONSOLE_NPM)/node_modules/playwright-core/package.json

$(CONSOLE_PW): tests/console/package.json tests/console/package-lock.json
	@mkdir -p $(CONSOLE_NPM)
	cp tests/console/package.json tests/console/package-lock.json $(CONSOLE_NPM)/
	@if (cd $(CONSOLE_NPM) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error); then \
	    touch $@; \
	else \
	    echo "console.mk: npm ci in $(CONSOLE_NPM) failed: the console test will fail" >&2; \
	    rm -rf $(CONSOLE_NPM)/node_modules; \
	fi

.PHONY: console-npm check-console
console-npm: $(CONSOLE_PW)

ifeq ($(HAVE_MHD)$(HAVE_PQ)$(HAVE_CRYPTO),111)

check: $(CONSOLE_PW) $(LEDGERD)
CHECK_TESTS += $(CONSOLE_TESTS)
TEST_ENV += CONSOLE_NODE_MODULES=$(ABS_BUILD)/tests/console/npm/node_modules

check-console: $(LEDGERD) $(CONSOLE_PW)
	$(TEST_ENV) $(RUN_TESTS) $(CONSOLE_TESTS)

else

CHECK_NOTE += --not-run "console tests (tests/console, $(words $(CONSOLE_TESTS)) files): configured without libmicrohttpd, libpq or libcrypto"

check-console:
	@echo "check-console: needs meter-ledgerd (libmicrohttpd, libpq, libcrypto: scripts/install-deps, ./configure)" >&2; exit 2

endif
