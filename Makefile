# The README's commands. Every target installs missing Debian packages first.
.PHONY: deps build run run-broker test test-release test-asan test-fuzz fuzz-long bench clean

JOBS ?= $(shell nproc)
# Tests in parallel: one more than the cores, as the integration suites spend much of their
# time waiting on sockets and processes.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
FUZZ_SECONDS ?= 20

deps:
	@scripts/install-deps

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

# ternd on 127.0.0.1:1883 with the vibration-monitoring services (examples/vibration).
run: build
	examples/vibration/run-demo build/release/apps/ternd build/release/examples/vibration

# ternd alone, with embedded defaults.
run-broker: build
	scripts/run-local

test: deps test-release test-asan test-fuzz
	@echo "make test: all suites passed"

test-release: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)
	ctest --preset release -j $(TEST_JOBS)

test-asan: deps
	cmake --preset asan-ubsan
	cmake --build --preset asan-ubsan -j $(JOBS)
	ctest --preset asan-ubsan -j $(TEST_JOBS)

test-fuzz: deps
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)
	scripts/run-fuzzers build/fuzz $(FUZZ_SECONDS)

# Longer fuzzing, outside `make test`.
fuzz-long: deps
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)
	scripts/run-fuzzers build/fuzz 1800

clean:
	rm -rf build
