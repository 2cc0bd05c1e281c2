# mock-accel — the two commands of README.md, and the steps they are made of.
#   make demo          the driver end to end on a local control plane (two simulated nodes)
#   make demo-kernel   boot a QEMU guest, load the module, print the devices
#   make test          every test (what .ci/run runs)
SHELL := /bin/bash
PYTHON ?= python3
export PYTHONDONTWRITEBYTECODE := 1

APT_PACKAGES := linux-headers-amd64 linux-image-amd64 qemu-system-x86 busybox-static kmod cpio \
	gcc make openssl shellcheck graphviz chromium
# Debian's kernel the module is built for and the VM boots (newest installed *-amd64).
KVER = $(shell ls /lib/modules 2>/dev/null | grep -- '-amd64$$' | sort -V | tail -n 1)
KDIR = /lib/modules/$(KVER)/build
KO := kmod/mock-accel.ko
ARTIFACTS ?= artifacts
PYTEST_ARGS ?=

.PHONY: all deps apt-deps py-deps firmware kmod checkpatch export check-export test-nbs lint \
	pytest test demo demo-kernel clean

all: kmod firmware

deps: apt-deps py-deps

apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages:" $$missing; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else echo "==> Debian packages present"; fi

py-deps:
	@echo "==> installing Python packages (pip install -e '.[dev]')"
	$(PYTHON) -m pip install --progress-bar on --disable-pip-version-check -q -e '.[dev]'

firmware:
	$(PYTHON) -m mock_accel.firmware --out firmware

kmod:
	@test -n "$(KVER)" || { echo "no Debian *-amd64 kernel in /lib/modules: run make deps"; exit 1; }
	@echo "==> building $(KO) for $(KVER) (W=1, warnings are errors)"
	$(MAKE) -C kmod KDIR=$(KDIR) check

# Debian's headers package lacks scripts/checkpatch.pl: take it from Debian's linux-source
# package once (about 140 MB to download) and keep it in the cache.
CHECKPATCH_CACHE ?= $(HOME)/.cache/mock-accel/checkpatch
LINUX_SOURCE_PKG ?= linux-source-6.1
checkpatch:
	@if [ ! -f $(CHECKPATCH_CACHE)/scripts/checkpatch.pl ]; then \
		echo "==> fetching checkpatch.pl from Debian's $(LINUX_SOURCE_PKG)"; \
		tmp=$$(mktemp -d) && (cd $$tmp && apt-get download -q $(LINUX_SOURCE_PKG)) && \
		dpkg-deb --fsys-tarfile $$tmp/*.deb | tar -xO --wildcards './usr/src/linux-source-*.tar.xz' \
			| tar -xJ -C $$tmp --wildcards --strip-components=1 '*/scripts/checkpatch.pl' \
			'*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch' && \
		mkdir -p $(CHECKPATCH_CACHE) && cp -r $$tmp/scripts $(CHECKPATCH_CACHE)/ && \
		rm -rf $$tmp || { rm -rf $$tmp; exit 1; }; fi
	@echo "==> checkpatch.pl --strict on kmod/"
	$(MAKE) -C kmod checkpatch CHECKPATCH=$(CHECKPATCH_CACHE)/scripts/checkpatch.pl

# nbs/ is the source: regenerate mock_accel/ and README.md, clean the notebooks.
export:
	nbdev_export
	nbdev_clean
	$(PYTHON) -m tools.readme

# Fails when the committed package, notebooks or README differ from what the notebooks give.
check-export:
	@echo "==> checking mock_accel/, nbs/ and README.md are in sync"
	@before=$$(git status --porcelain -- mock_accel nbs README.md); \
	nbdev_export && nbdev_clean && $(PYTHON) -m tools.readme --check || exit 1; \
	$(PYTHON) -m mock_accel.proto_build --check || exit 1; \
	after=$$(git status --porcelain -- mock_accel nbs README.md); \
	if [ "$$before" != "$$after" ]; then \
		echo "nbdev_export/nbdev_clean changed files:"; git status --short -- mock_accel nbs; \
		git --no-pager diff --stat -- mock_accel nbs; exit 1; fi

test-nbs:
	@echo "==> running the notebooks (nbdev_test)"
	nbdev_test --path nbs --flags ''

lint:
	$(PYTHON) -m ruff check mock_accel tests tools

include mk/cluster.mk
# Each concern brings its own make fragment (chart checks, e2e notebooks, benchmarks under
# tests/, the docs site under tools/).
# A fragment appends the targets `make test` runs after pytest to TEST_AFTER_PYTEST, and
# those that need their results (the docs site, built from executed notebooks) to TEST_LAST.
TEST_AFTER_PYTEST :=
TEST_LAST :=
-include $(sort $(wildcard tests/*/*.mk tools/*/*.mk))


pytest:
	@echo "==> pytest (simulator, uapi, VM with the real module, control plane)"
	MOCK_ACCEL_KO=$(abspath $(KO)) MOCK_ACCEL_FIRMWARE_DIR=$(abspath firmware) \
		$(PYTHON) -m pytest $(PYTEST_ARGS)

test: deps
	$(MAKE) firmware kmod checkpatch check-export lint test-nbs
	$(MAKE) cluster-bins pytest
	$(if $(strip $(TEST_AFTER_PYTEST) $(TEST_LAST)),$(MAKE) $(TEST_AFTER_PYTEST) $(TEST_LAST))

# The control plane runs as a background supervisor; the trap stops it on exit and on Ctrl-C.
demo: deps
	$(MAKE) cluster-bins
	@state=$$(mktemp -d)/cluster.json; \
	trap '$(PYTHON) -m mock_accel.cluster down --state-file '"$$state"' >/dev/null' EXIT; \
	echo "==> starting the local control plane (etcd, kube-apiserver, scheduler, controller-manager)"; \
	$(PYTHON) -m mock_accel.cluster up --nodes 2 --state-file "$$state" || exit 1; \
	read -r kubeconfig nodes < <($(PYTHON) -c 'import json, sys; s = json.load(open(sys.argv[1])); \
		print(s["kubeconfig"], ",".join(s["nodes"]))' "$$state"); \
	$(PYTHON) -m mock_accel.cli demo --kubeconfig "$$kubeconfig" --nodes "$$nodes" \
		--out $(ARTIFACTS)/demo

demo-kernel: deps
	$(MAKE) firmware kmod
	@echo "==> booting the guest and loading mock-accel (2 NUMA nodes, 2 VFs per PF)"
	$(PYTHON) -m tools.vm run --ko $(KO) --modparams "num_vfs=2" --firmware-dir firmware -- \
		python3 -m mock_accel.inventory --passphrase 6

clean:
	-$(MAKE) -C kmod KDIR=$(KDIR) clean
	rm -rf $(ARTIFACTS) firmware/mock-accel-wordlist.txt
