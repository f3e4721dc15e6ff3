# Convenience targets around the CMake build. The README's commands are
# scripts/run and scripts/test; these are for day-to-day work.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
SOURCES := $(shell git ls-files '*.c' '*.h' 2>/dev/null)
LINT_SOURCES := $(shell git ls-files 'src/*.c' 'tools/*.c' 'bench/*.c' 2>/dev/null)

.PHONY: all test run install format format-check lint bench fuzz clean

all:
	cmake -S . -B $(BUILD) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test:
	./scripts/test

run:
	./scripts/run

# The tools, libnanasqlite-client (.so, header, pkg-config file) under
# PREFIX (default /usr/local); DESTDIR is honoured.
PREFIX ?= /usr/local
install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

# clang-tidy (checks in .clang-tidy) over the compile database, then cppcheck.
lint: all
	clang-tidy -p $(BUILD) --quiet --warnings-as-errors='*' $(LINT_SOURCES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -D_GNU_SOURCE -I src \
	  --suppress=missingIncludeSystem $(LINT_SOURCES)

bench: all
	$(BUILD)/bench/nanasqlite-bench-store
	$(BUILD)/bench/nanasqlite-bench-quic

# libFuzzer harnesses (clang): build them and run each briefly (scripts/fuzz;
# FUZZ_SECONDS per harness, default 20).
FUZZ_SECONDS ?= 20
fuzz:
	./scripts/fuzz $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-tsan build-fuzz
