# Thin wrapper around CMake (the real build). `make`, `make test`, `make bench`, `make asan`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all test bench asan fuzz clean demo teaser

all:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo:
	scripts/demo.sh

teaser: all
	BUILD=$(BUILD) scripts/teaser.sh

bench: all
	./$(BUILD)/bench/df-bench-kernels

asan:
	cmake -S . -B build-asan -DDF_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) -L fast

# libFuzzer targets build-fuzz/fuzz_* (clang, ASan + UBSan; fuzz/README.md). Run one with e.g.
#   build-fuzz/fuzz_safetensors -max_total_time=30 fuzz/corpus/safetensors
fuzz:
	CC=clang cmake -S . -B build-fuzz -DDF_FUZZ=ON -DDF_OPENMP=OFF -DDF_BUILD_TESTS=OFF \
	  -DDF_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_all

clean:
	rm -rf $(BUILD) build-asan build-fuzz
