# The Helm chart (chart/) -- included by the top-level Makefile. `make test` runs tests/chart
# inside its pytest step (lint, templates per mode, images, control-plane checks); these targets
# are for working on the chart by hand.
#   make chart-lint      helm lint --strict, default values and both kernel module modes
#   make test-chart      pytest tests/chart (starts the local control plane)
#   make chart-package   helm package into $(ARTIFACTS)/chart (after make firmware: the
#                        package then carries the wordlist)
PYTHON ?= python3
CHART_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CHART_REPO := $(abspath $(CHART_DIR)/../..)
CHART_HELM = $(shell $(PYTHON) -c 'import sys; sys.path.insert(0, "$(CHART_REPO)"); \
	from mock_accel import kubebins; print(kubebins.ensure_bins(["helm"])["helm"])')

.PHONY: chart-lint test-chart chart-package

chart-lint: cluster-bins
	$(CHART_HELM) lint --strict $(CHART_REPO)/chart
	$(CHART_HELM) lint --strict $(CHART_REPO)/chart --set kernelModule.enabled=true
	$(CHART_HELM) lint --strict $(CHART_REPO)/chart --set kernelModule.enabled=true \
		--set kernelModule.mode=build

test-chart: cluster-bins firmware
	cd $(CHART_REPO) && $(PYTHON) -m pytest tests/chart $(PYTEST_ARGS)

chart-package: cluster-bins firmware
	mkdir -p $(ARTIFACTS)/chart
	$(CHART_HELM) package $(CHART_REPO)/chart --destination $(ARTIFACTS)/chart
