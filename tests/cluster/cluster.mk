# Tests of the local Kubernetes control plane -- included by the top-level Makefile
# (cluster-bins, cluster-up/down/status are product targets in mk/cluster.mk).
#   make test-cluster    run tests/cluster against a freshly started control plane
#   make cluster-bench   build time, warm start-up, peak memory
PYTHON ?= python3
CLUSTER_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CLUSTER_REPO := $(abspath $(CLUSTER_DIR)/../..)

.PHONY: test-cluster cluster-bench

test-cluster: cluster-bins
	cd $(CLUSTER_REPO) && $(PYTHON) -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

cluster-bench: cluster-bins
	cd $(CLUSTER_REPO) && $(PYTHON) -m tests.cluster.bench
