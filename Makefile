# vmnet-e2e: `make test` runs the project's tests, `make e2e` the scenario
# suite. Both need root for the local provider (network namespaces, taps,
# qemu guests) and install the Debian packages they need.

GO ?= go
PROVIDER ?= local
DRY_RUN ?=
# PROCS is the number of parallel Ginkgo processes, each booting one guest at
# a time: two host cores hold about three TCG guests.
PROCS ?= 3
ARTIFACTS ?= artifacts
REPORT ?= $(ARTIFACTS)/report.json
# LABEL_FILTER selects scenarios by label, for example
# 'cni: containsAny {macvlan}' or 'strategy: containsAny {cloud-init-nic-name}'.
LABEL_FILTER ?=
# TEST_LABELS selects the scenarios `make test` runs: the rejected ones
# (no guest) and the two NIC-name scenarios (one guest each).
TEST_LABELS ?= strategy: containsAny {ip-address-field, cloud-init-nic-name} && !cni: containsAny {macvtap}

GINKGO := $(GO) tool ginkgo
VMNET := $(GO) run ./cmd/vmnet

.PHONY: all deps image apiserver vmnet test unit e2e e2e-local e2e-kind report cleanup bench vet

all: test

deps:
	@scripts/install-deps.sh

# vmnet builds the CLI as bin/vmnet. Run it from there rather than with
# `go run`, which turns every non-zero exit status into 1.
vmnet:
	$(GO) build -o bin/vmnet ./cmd/vmnet

image: deps
	@scripts/require-root.sh image
	$(VMNET) image build

# apiserver builds kube-apiserver, etcd and KubeVirt's CRDs from the modules
# under tools/ into ~/.cache/vmnet-e2e/apiserver for the API tests
# (framework/apitest); it does nothing when they are cached. About 6 minutes
# the first time on 2 cores.
apiserver:
	$(GO) run ./framework/apitest/cmd/apitest build

vet:
	$(GO) vet ./...

# unit runs every package except the scenario suite, one package at a time so
# that guest-booting packages do not share the two cores.
unit:
	$(GO) test -p 1 -count=1 -timeout 45m $$($(GO) list ./... | grep -v '/e2e$$')

test: deps
	@scripts/require-root.sh test
	$(MAKE) vet
	$(MAKE) lint-workflows
	$(VMNET) image build
	$(MAKE) apiserver
	$(MAKE) unit
	$(GINKGO) --procs=2 --timeout=30m --fail-on-empty --label-filter='$(TEST_LABELS)' \
		--junit-report=junit-test.xml --output-dir=$(ARTIFACTS) ./e2e -- \
		-vmnet.report=$(CURDIR)/$(ARTIFACTS)/report-test.json -vmnet.artifacts=$(CURDIR)/$(ARTIFACTS)

ifeq ($(CELL),)
e2e: e2e-$(PROVIDER)
else
e2e: matrix
endif

e2e-local: deps
	@scripts/require-root.sh e2e
	$(VMNET) image build
	rm -f $(REPORT)
	VMNET_PROVIDER=local $(GINKGO) --procs=$(PROCS) --timeout=60m --fail-on-empty --label-filter='$(LABEL_FILTER)' \
		--junit-report=junit.xml --output-dir=$(ARTIFACTS) ./e2e -- \
		-vmnet.report=$(CURDIR)/$(REPORT) -vmnet.artifacts=$(CURDIR)/$(ARTIFACTS)
	$(VMNET) report --no-table --timing $(REPORT)

e2e-kind:
ifneq ($(DRY_RUN),)
	$(VMNET) plan --provider kind --scenarios scenarios --label-filter '$(LABEL_FILTER)'
else
	$(VMNET) preflight --provider kind
	rm -f $(REPORT)
	VMNET_PROVIDER=kind $(GINKGO) --procs=$(PROCS) --timeout=120m --fail-on-empty --label-filter='$(LABEL_FILTER)' \
		--junit-report=junit.xml --output-dir=$(ARTIFACTS) ./e2e -- \
		-vmnet.report=$(CURDIR)/$(REPORT) -vmnet.artifacts=$(CURDIR)/$(ARTIFACTS)
	$(VMNET) report --no-table --timing $(REPORT)
endif

report:
	$(VMNET) report --timing $(REPORT)

cleanup:
	@scripts/require-root.sh cleanup
	$(VMNET) cleanup

bench:
	@scripts/require-root.sh bench
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./framework/guest

# CELL selects one cell of clusters/matrix.yaml: `make matrix` lists the
# cells, `make e2e CELL=<name>` or `make matrix CELL=<name>` runs one.
CELL ?=
MATRIX ?= clusters/matrix.yaml
# MATRIX_RUN_FLAGS are extra flags of `vmnet matrix run`, for example --print
# (show the command, run nothing) or --resolve-digests (the nightly workflow).
MATRIX_RUN_FLAGS ?=

.PHONY: matrix lint-workflows

matrix:
ifeq ($(CELL),)
	$(VMNET) matrix list --file $(MATRIX)
else
	$(VMNET) matrix run --file $(MATRIX) $(MATRIX_RUN_FLAGS) $(CELL)
endif

# lint-workflows checks .github/workflows with actionlint; it runs shellcheck
# on run: blocks when shellcheck is installed.
lint-workflows:
	$(GO) tool actionlint
