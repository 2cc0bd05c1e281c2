# Local Kubernetes control plane for tests -- included by the top-level Makefile.
#   make cluster-bins   build (or reuse) etcd, kube-*, kubectl and helm into the cache
#   make test-cluster   run tests/cluster against a freshly started control plane
#   make cluster-up / cluster-down   a long-lived cluster for manual work
PYTHON ?= python3
CLUSTER_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CLUSTER_REPO := $(abspath $(CLUSTER_DIR)/../..)
CLUSTER_NODES ?= 2

.PHONY: cluster-bins test-cluster cluster-up cluster-down cluster-status cluster-bench

cluster-bins:
	$(PYTHON) $(CLUSTER_DIR)/build_bins.py

test-cluster: cluster-bins
	cd $(CLUSTER_REPO) && $(PYTHON) -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

cluster-up: cluster-bins
	cd $(CLUSTER_REPO) && $(PYTHON) -m tests.cluster up --nodes $(CLUSTER_NODES)

cluster-down:
	cd $(CLUSTER_REPO) && $(PYTHON) -m tests.cluster down

cluster-status:
	cd $(CLUSTER_REPO) && $(PYTHON) -m tests.cluster status

cluster-bench: cluster-bins
	cd $(CLUSTER_REPO) && $(PYTHON) -m tests.cluster.bench
