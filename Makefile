# sockkit — every target bootstraps the pinned Deno when none is on PATH.
#   make demo    real transfers on 127.0.0.1 (the main job)
#   make test    fmt, lint, check, doc lint, then the whole suite;
#                ends with "tests: N passed, N failed"
#   make build   dist/{client,server,cache,chat}
#   make bench   performance figures (ratios against same-run references)

SHELL := /bin/bash
DENO_VERSION := 2.9.6
TOOLS := $(CURDIR)/.tools
SYSTEM_DENO := $(shell command -v deno 2>/dev/null)
ifeq ($(SYSTEM_DENO),)
DENO := $(TOOLS)/bin/deno
DENO_DEP := $(DENO)
else
DENO := $(SYSTEM_DENO)
DENO_DEP :=
endif

export DENO_NO_UPDATE_CHECK := 1
export DENO_NO_PROMPT := 1
export NO_COLOR := 1
export PATH := $(dir $(DENO)):$(PATH)

# Upper bound for the whole test suite, in seconds.
TEST_TIMEOUT ?= 1500
RUN_FLAGS := --allow-all
MAINS := roles/client/main.ts roles/server/main.ts roles/cache/main.ts roles/chat/main.ts

.PHONY: all deno demo test lint-all unit build compile bench evaluate clean

all: build

deno: $(DENO_DEP)
	@$(DENO) --version | head -n 1

# Pinned Deno from the npm package "deno" into a git-ignored project folder.
$(TOOLS)/bin/deno:
	@echo "bootstrapping deno $(DENO_VERSION) from npm into .tools/"
	@mkdir -p $(TOOLS)/bin
	@npm install --prefix $(TOOLS) --no-save --no-audit --no-fund --loglevel=error deno@$(DENO_VERSION) >/dev/null
	@real=$$(ls $(TOOLS)/node_modules/@deno/*/deno 2>/dev/null | head -n 1); \
	  if [ -z "$$real" ]; then real=$(TOOLS)/node_modules/.bin/deno; fi; \
	  ln -sf "$$real" $@
	@$@ --version | head -n 1

demo: $(DENO_DEP)
	$(DENO) run $(RUN_FLAGS) bench/demo.ts

lint-all: $(DENO_DEP)
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check mod.ts $(MAINS) bench/*.ts tests/*.ts tests/_helpers/*.ts
	$(DENO) doc --lint mod.ts

test: lint-all
	@mkdir -p $(TOOLS)
	@set -o pipefail; status=0; \
	  timeout --kill-after=30 $(TEST_TIMEOUT) $(DENO) test $(RUN_FLAGS) tests/ 2>&1 \
	    | tee $(TOOLS)/test.log || status=$$?; \
	  line=$$(grep -E '^(ok|FAILED) \| ' $(TOOLS)/test.log | tail -n 1); \
	  passed=$$(printf '%s' "$$line" | sed -nE 's/.* ([0-9]+) passed.*/\1/p'); \
	  failed=$$(printf '%s' "$$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p'); \
	  if [ -z "$$line" ]; then passed=0; failed=1; echo "test run ended without a summary (status $$status)"; fi; \
	  if [ "$$status" != 0 ] && [ "$${failed:-0}" = 0 ]; then failed=1; fi; \
	  echo "tests: $${passed:-0} passed, $${failed:-0} failed"; \
	  [ "$$status" = 0 ] && [ "$${failed:-0}" = 0 ]

# Just the suite (no fmt/lint/check): `make unit FILTER=snw`.
unit: $(DENO_DEP)
	$(DENO) test $(RUN_FLAGS) $(if $(FILTER),--filter "$(FILTER)") tests/

build: $(DENO_DEP)
	$(DENO) run $(RUN_FLAGS) bench/build.ts

compile: $(DENO_DEP)
	$(DENO) run $(RUN_FLAGS) bench/build.ts --compile

bench: $(DENO_DEP)
	$(DENO) run $(RUN_FLAGS) bench/main.ts

# TCP vs SNW from packet captures (tshark); `make evaluate ARGS=--quick`.
evaluate: $(DENO_DEP)
	$(DENO) run $(RUN_FLAGS) bench/evaluate.ts $(ARGS)

clean:
	rm -rf dist
