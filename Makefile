# The commands the README shows.  CMake does the building; this file only
# names the steps.
#   make deps     install what is missing (Debian: apt-get), saying what
#   make          library, tools, examples, benchmarks   (build/)
#   make test     deps, build, every test; again under ASan+UBSan and TSan
#   make demo     election, crash failover and graceful handover, live
#   make install  header, libraries, leasehold.pc, tools (PREFIX=/usr/local)
#   make bench    the failover benchmark (by hand; not part of make test)
#   make bench-scale  many elections per process: cost and a crash (by hand; CLUSTER=1)
#   make fuzz     each libFuzzer target for FUZZ_SECONDS (30)     (build-fuzz/)
#   make valgrind the integration tests under valgrind memcheck (by hand; slow)
#   make chaos    a seeded fault schedule and its safety check (SECONDS=90 SEED=1)

PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
BUILD  ?= build

.PHONY: all deps build test test-fast demo install bench bench-scale format clean

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

# The README's "Many elections" table: 3 processes campaigning for the same
# N keys, the defaults at N = 1000, then the long-lease profile at 1000 and
# 10000.
LONG_LEASE = --lease-ms 10000 --renew-ms 1500 --retry-ms 5000
# CLUSTER=1: the same on a private 3-master Redis Cluster (the README's second table).
bench-scale: build
	@$(BUILD)/bench/scale --elections 1000 $(if $(CLUSTER),--cluster)
	@$(BUILD)/bench/scale --elections 1000 $(LONG_LEASE) $(if $(CLUSTER),--cluster)
	@$(BUILD)/bench/scale --elections 10000 $(LONG_LEASE) $(if $(CLUSTER),--cluster)

# The chaos schedule of tests/chaos/driver.c against five candidates, then the
# checker's report; `make test` runs the same for 90 s with seed 1 (the first
# round of the deck, every fault type once, is always dealt whole).  One type
# alone: build/tests/chaos_driver --faults clock-step --seconds 60 --seed 1
#   make chaos SECONDS=600 SEED=7
#   make chaos TLS=1          the same over rediss:// (make test runs 45 s of it)
#   make chaos SENTINEL=1     a master, two replicas, three Sentinels, each node in a
#                             network namespace (root), and their failovers and
#                             partitions; MIN_REPLICAS=0 runs it without replica
#                             acknowledgement (and fails: see README)
#   make chaos CLUSTER=1      a 3-master Redis Cluster, 3 probes x 8 keys each judged
#                             alone: migrations, failovers, masters killed, stopped
#                             and cut off (network namespaces: root)
SECONDS ?= 90
SEED    ?= 1
.PHONY: chaos
ifdef CLUSTER
chaos: build
	@$(BUILD)/tests/chaos_cluster --seconds $(SECONDS) --seed $(SEED) \
	    $(if $(MIN_REPLICAS),--min-replicas $(MIN_REPLICAS))
else
chaos: build
	@$(BUILD)/tests/chaos_driver --seconds $(SECONDS) --seed $(SEED) $(if $(TLS),--tls) \
	    $(if $(SENTINEL),--sentinel) $(if $(MIN_REPLICAS),--min-replicas $(MIN_REPLICAS))
endif

# libFuzzer (clang) on the URL parser, the reply handling and the state
# machine, FUZZ_SECONDS each; `make test` runs it with the default.
FUZZ_SECONDS ?= 30
.PHONY: fuzz valgrind
fuzz:
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# The integration tests and the processes they start, under memcheck: no
# error and no leak.  Not part of make test (minutes).
valgrind: build
	@scripts/valgrind.sh $(BUILD)

format:
	clang-format -i include/*.h src/*.[ch] tools/*.c examples/*.c tests/*/*.[ch] bench/*.c

clean:
	rm -rf build build-asan build-tsan build-fuzz build-vg
