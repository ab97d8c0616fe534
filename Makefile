# The commands the README shows.  CMake does the building; this file only
# names the steps.
#   make deps     install what is missing (Debian: apt-get), saying what
#   make          library, tools, examples, benchmarks   (build/)
#   make test     deps, build, every test; again under ASan+UBSan and TSan
#   make demo     election, crash failover and graceful handover, live
#   make install  header, libraries, leasehold.pc, tools (PREFIX=/usr/local)
#   make bench    the failover benchmark (by hand; not part of make test)

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
BUILD  ?= build

.PHONY: all deps build test test-fast demo install bench format clean

all: build

deps:
	@scripts/deps.sh

build:
	@scripts/build.sh $(BUILD) ""

test: deps
	@scripts/test.sh

# One build, no sanitizers: for quick iterations.
test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: deps build
	@scripts/demo.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

bench: build
	@$(BUILD)/bench/failover

format:
	clang-format -i include/*.h src/*.[ch] tools/*.c examples/*.c tests/*/*.[ch] bench/*.c

clean:
	rm -rf build build-asan build-tsan
