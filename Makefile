# The two commands a newcomer needs: `make run` and `make test`. Both install missing Debian packages
# first, then build in ./build (Release; one tree for both so neither rebuilds the other's work).
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CONFIG ?= config/sluice.yaml
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run upstream test check format clean

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

# Validates a config file without starting: make check CONFIG=path/to.yaml
check: build
	$(BUILD_DIR)/sluice check $(CONFIG)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
