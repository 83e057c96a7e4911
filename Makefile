# The two commands a user needs: `make demo` and `make test`. Both install what is missing
# (Debian packages, through scripts/install-deps.sh), configure a Release build in build/ and build.
BUILD ?= build
JOBS ?= $(shell nproc)
SHARED ?= $(abspath $(CURDIR)/../shared)
MODEL ?= $(SHARED)/models/stories260K

.PHONY: all deps configure build install demo test bench fuzz clean cross test-cross

all: build

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The executable into $(PREFIX)/bin and the README and security notes into $(PREFIX)/share/doc.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# The main job: a small mesh of local nodes (two stages and an entry node) answers a prompt.
demo: build
	./scripts/demo-mesh.sh $(BUILD) $(MODEL) "Once upon a time"

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

bench: build
	./bench/run.sh $(BUILD)

# libFuzzer targets for the parsers of untrusted bytes (needs clang; not part of CI).
FUZZ_SECONDS ?= 60
fuzz: deps
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_C_COMPILER=clang -DTROUPE_FUZZ=ON -DTROUPE_TESTS=OFF >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_checkpoint fuzz_tokenizer fuzz_gguf fuzz_wire
	@mkdir -p build-fuzz/corpus/checkpoint build-fuzz/corpus/tokenizer build-fuzz/corpus/gguf \
	  build-fuzz/corpus/wire
	./build-fuzz/fuzz/fuzz_checkpoint -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  build-fuzz/corpus/checkpoint fuzz/corpus/checkpoint
	./build-fuzz/fuzz/fuzz_tokenizer -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  build-fuzz/corpus/tokenizer fuzz/corpus/tokenizer
	./build-fuzz/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  build-fuzz/corpus/gguf fuzz/corpus/gguf
	./build-fuzz/fuzz/fuzz_wire -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  build-fuzz/corpus/wire fuzz/corpus/wire

# Cross builds (docs/cross.md): `make cross ARCH=arm64|riscv64` builds build-ARCH/troupe and the
# kernel tests with Debian's cross compiler, incrementally; `make test-cross` builds both and runs
# their tests under qemu-user. Each links against a sysroot assembled from Debian's packages in
# build-ARCH/sysroot (scripts/cross-sysroot.sh): arm64 the whole product; riscv64 the engine
# alone (TROUPE_MESH=OFF), static.
ARCH ?= arm64
CCACHE := $(if $(shell command -v ccache),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cross:
	@case "$(ARCH)" in arm64|riscv64) ;; *) echo "make cross: ARCH must be arm64 or riscv64" >&2; exit 2;; esac
	@./scripts/install-cross-deps.sh
	@./scripts/cross-sysroot.sh $(ARCH) $(CURDIR)/build-$(ARCH)/sysroot
	@cmake -S . -B build-$(ARCH) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CCACHE) \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchain-$(ARCH).cmake >/dev/null
	@cmake --build build-$(ARCH) -j $(JOBS) --target troupe troupe_kernels_tests

# Then a mesh of host nodes with an arm64 one under qemu (tests/cross/), built in $(BUILD).
test-cross:
	@$(MAKE) --no-print-directory cross ARCH=arm64
	@$(MAKE) --no-print-directory cross ARCH=riscv64
	./scripts/test-cross.sh arm64 $(SHARED)
	./scripts/test-cross.sh riscv64 $(SHARED)
	@$(MAKE) --no-print-directory configure
	@cmake --build $(BUILD) -j $(JOBS) --target troupe troupe_cross_tests
	$(BUILD)/tests/troupe_cross_tests

clean:
	rm -rf $(BUILD) build-fuzz build-arm64 build-riscv64
