# The two commands a newcomer needs: `make run` and `make test`. Both install missing Debian packages
# first, then build in ./build (Release; one tree for both so neither rebuilds the other's work).
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CONFIG ?= config/sluice.yaml
JOBS ?= $(shell nproc)

# Sanitizer and fuzz builds, each in its own tree so none rebuilds ./build (docs/testing.md).
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fuzz_config fuzz_path fuzz_classify fuzz_request
FUZZ_ARGS ?=
# The multi-threaded tests ThreadSanitizer runs (a ctest -R regex): the memory store's, whose
# threads hammer shared keys, and the integration tests, which run the real binary.
TSAN_TESTS ?= ^unit: ?memory store|^integration:
# Checked builds: -O1 with line tables only (-g1) compile about twice as fast as RelWithDebInfo's
# -O2 -g and still give file:line in every report.
SANITIZE_FLAGS ?= "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1"
SANITIZE_TARGETS ?= sluice sluice_test_upstream sluice_unit_tests sluice_integration_tests \
  sluice_redis_tests

.PHONY: all deps configure build run upstream test check format clean test-sanitize test-tsan fuzz bench

all: build

deps:
	@scripts/install-deps

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: $(BUILD_DIR)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	$(BUILD_DIR)/sluice --config $(CONFIG)

# A demo API on 127.0.0.1:3000 for the quickstart (the integration tests' upstream: it echoes requests).
upstream: build
	$(BUILD_DIR)/tests/sluice_test_upstream --port 3000

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# Runs ctest in build dir $(1) with the extra ctest arguments $(2). ASan, LSan and TSan reports of
# every process go to files in $(1)/sanitizer-logs, including those of the sluice and upstream
# processes the integration tests start (whose stderr the tests do not keep): any report fails the
# run. UBSan (fatal here) reports on stderr: GCC's combined ASan+UBSan runtime ignores log_path.
# Options already in ASAN_OPTIONS, UBSAN_OPTIONS or TSAN_OPTIONS are appended, so they win.
define sanitized_ctest
	@logs="$(CURDIR)/$(1)/sanitizer-logs"; rm -rf "$$logs"; mkdir -p "$$logs"; \
	log="log_path=$$logs/report"; \
	export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:$$log$${ASAN_OPTIONS:+:$$ASAN_OPTIONS}"; \
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1$${UBSAN_OPTIONS:+:$$UBSAN_OPTIONS}"; \
	export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:$$log$${TSAN_OPTIONS:+:$$TSAN_OPTIONS}"; \
	ctest --test-dir $(1) --output-on-failure -j $(JOBS) $(2); status=$$?; \
	if ls "$$logs"/report* >/dev/null 2>&1; then \
	  cat "$$logs"/report*; echo "sanitizer reports above (files in $$logs)"; status=1; \
	fi; \
	exit $$status
endef

# The whole suite under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer.
test-sanitize: deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(SANITIZE_FLAGS) \
	  -DSLUICE_SANITIZE=address,undefined
	cmake --build $(ASAN_DIR) -j $(JOBS) --target $(SANITIZE_TARGETS)
	$(call sanitized_ctest,$(ASAN_DIR),)

# The multi-threaded tests (TSAN_TESTS) under ThreadSanitizer.
test-tsan: deps
	cmake -S . -B $(TSAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(SANITIZE_FLAGS) \
	  -DSLUICE_SANITIZE=thread
	cmake --build $(TSAN_DIR) -j $(JOBS) --target sluice_unit_tests sluice_integration_tests
	$(call sanitized_ctest,$(TSAN_DIR),-R '$(TSAN_TESTS)')

# Each libFuzzer target for FUZZ_SECONDS (after a pass over the seed corpora); fails on a crash,
# whose input is left in $(FUZZ_DIR)/artifacts/TARGET/. New inputs go to $(FUZZ_DIR)/corpus/TARGET,
# never into the source tree. FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS="-jobs=2 -workers=2".
fuzz: deps
	@scripts/install-deps clang libclang-rt-14-dev
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(SANITIZE_FLAGS) \
	  -DCMAKE_CXX_COMPILER=clang++ \
	  -DSLUICE_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_targets
	ctest --test-dir $(FUZZ_DIR) -L fuzz --output-on-failure
	@for target in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$target $(FUZZ_DIR)/artifacts/$$target || exit 1; \
	  echo "== $$target for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/fuzz/$$target -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -dict=tests/fuzz/dict/$$target.dict -artifact_prefix=$(FUZZ_DIR)/artifacts/$$target/ \
	    $(FUZZ_ARGS) $(FUZZ_DIR)/corpus/$$target tests/fuzz/corpus/$$target || exit 1; \
	done

# sluice against nginx limit_req and HAProxy on loopback (bench/run.sh, docs/performance.md); needs
# nginx-light, haproxy, wrk (and redis-server for the Redis scenario). Options go through BENCH_ARGS:
#   make bench BENCH_ARGS="--rounds 5 --secs 5 --only allowed,rejected"
bench: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target sluice sluice_bench_store
	bench/run.sh --sluice $(BUILD_DIR)/sluice $(BENCH_ARGS)

# Validates a config file without starting: make check CONFIG=path/to.yaml
check: build
	$(BUILD_DIR)/sluice check $(CONFIG)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
