# Thin wrapper around CMake (the real build). `make`, `make test`, `make bench`, `make asan`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all test bench asan clean demo teaser

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

clean:
	rm -rf $(BUILD) build-asan
