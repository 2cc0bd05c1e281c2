# The local Kubernetes control plane (mock_accel.cluster) -- included by the top-level Makefile.
#   make cluster-bins     build (or reuse) etcd, kube-*, kubectl and helm into the cache
#   make cluster-up       a long-lived cluster with $(CLUSTER_NODES) nodes for manual work
#   make cluster-status   is it alive and ready?
#   make cluster-down     stop it
PYTHON ?= python3
CLUSTER_NODES ?= 2

.PHONY: cluster-bins cluster-up cluster-down cluster-status

cluster-bins:
	$(PYTHON) -m mock_accel.kubebins

cluster-up: cluster-bins
	$(PYTHON) -m mock_accel.cluster up --nodes $(CLUSTER_NODES)

cluster-down:
	$(PYTHON) -m mock_accel.cluster down

cluster-status:
	$(PYTHON) -m mock_accel.cluster status
