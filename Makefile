# Entry points. `make demo` and `make test` do all the set-up on a fresh Debian 12 machine.
BUILD ?= build
JOBS ?= $(shell nproc)
DEMO_MODEL ?= models/tiny-moe
DEMO_CHAT ?= models/tiny-moe/samples/demo_chat.prompt.txt
DEMO_PROMPT ?= def __init__(self
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
	@echo "== a tool call (the model emits it; a client would run the tool and send the result back)"
	$(BUILD)/tools/moe run --model $(DEMO_MODEL) --prompt-file $(DEMO_CHAT) -n 48 --temp 0
	@echo "== Python, sampled"
	$(BUILD)/tools/moe run --model $(DEMO_MODEL) --prompt "$(DEMO_PROMPT)" -n 64 --temp 0.7 --repeat-penalty 1.1 --seed 1

clean:
	rm -rf $(BUILD)
