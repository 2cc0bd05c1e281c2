# Benchmarks (issue 7) -- included by the top-level Makefile; NOT part of `make test`.
#   make bench                 every benchmark, then tests/bench/results/latest.{md,json}
#   make bench BENCH_QUICK=1   small sizes and short windows (a first look; not the figures)
#   make bench-peers | bench-slices | bench-prepare | bench-scale | bench-kernel | bench-report
#   make bench-events          issue 19: change -> slice latency and idle CPU, 3 runs (~6 min)
#   make bench-profile         where one prepare (and 100 concurrent) spends its time
#                              (PROFILE_BASELINE=REV: and REV's agent beside it, same run)
#   MOCK_ACCEL_SEED_SRC=/path/to/mock-device make bench   the seed's driver too (from a checkout)
# Tables go to stdout, plots and raw JSON to $(ARTIFACTS)/bench/.
PYTHON ?= python3
BENCH_REPO := $(abspath $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/../..)
BENCH_QUICK ?=
export BENCH_QUICK

.PHONY: bench bench-peers bench-slices bench-prepare bench-scale bench-kernel bench-report \
	bench-events bench-profile

# The module and the wordlist are built when missing (`make kmod firmware` rebuilds them).
bench: cluster-bins bench-peers
	@test -f $(BENCH_REPO)/firmware/mock-accel-wordlist.txt || $(MAKE) firmware
	@test -f $(BENCH_REPO)/kmod/mock-accel.ko || $(MAKE) kmod
	$(MAKE) bench-slices bench-events bench-prepare bench-profile bench-scale bench-kernel
	$(MAKE) bench-report

bench-peers:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.peers --check-seed

bench-slices:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.bench_slices

bench-prepare:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.bench_prepare

bench-scale:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.bench_scale

bench-events:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.bench_events

bench-kernel:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.bench_kernel

bench-profile:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.profile_prepare $(if $(PROFILE_BASELINE),--baseline $(PROFILE_BASELINE))

bench-report:
	cd $(BENCH_REPO) && $(PYTHON) -m tests.bench.report
