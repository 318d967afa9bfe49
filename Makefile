# Entry points. `make demo` and `make test` do all the set-up on a fresh Debian 12 machine.
BUILD ?= build
JOBS ?= $(shell nproc)
DEMO_MODEL ?= tests/fixtures/qwen3_moe
DEMO_PROMPT ?= The quick brown fox
CMAKE_FLAGS ?=

.PHONY: all deps build test demo clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/tools/moe run --model $(DEMO_MODEL) --prompt "$(DEMO_PROMPT)" -n 48 --seed 1

clean:
	rm -rf $(BUILD)
