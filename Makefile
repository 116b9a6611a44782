# slurm-lwk build, test and install.
#
#   make build      Go binaries into bin/
#   make spank      the SPANK plugin spank/spank_lwk.so (needs libslurm-dev)
#   make deps       install what the build and tests need (root; apt: Slurm,
#                   munge, MariaDB, libslurm-dev, gcc)
#   make test       everything CI runs: deps, lint, unit tests (root tests run
#                   for real as root), the C tests, and the end-to-end tests
#                   against a real local Slurm (started, then stopped)
#   make unit       Go unit tests and the C grammar check only
#   make e2e        end-to-end tests only (root; brings the local Slurm up)
#   make test-cluster  multi-node end-to-end tests on a three-node cluster on
#                   this machine (root; scripts/slurm-cluster test; network,
#                   UTS and mount namespaces; about a minute warm)
#   make test-matrix  the end-to-end tests against each Slurm series in
#                   MATRIX_SERIES: 22.05 natively, 24.11 and 26.05 in Debian
#                   trixie and forky roots (root; debootstrap, cached in
#                   build/roots/; scripts/slurm-matrix), then make
#                   test-cluster
#   make test-vm    the real IHK backend against ihk_testdrv (a test double of
#                   IHK's device interface) in a QEMU VM of Debian's kernel (root)
#   make lint       gofmt, go vet, staticcheck, errorlint
#   make bench      lifecycle overhead and planner benchmarks (prints numbers)
#   make bench-isolation  a Linux job beside confined/unconfined proxy storms
#                   (root, gcc, cgroup v1; about 3 minutes; prints a table)
#   make bench-frag memory contiguity after stress, six node preparations,
#                   in a QEMU VM with Debian's kernel (scripts/vm-node compare;
#                   root: it also measures a real reservation through ihk_testdrv)
#   make test-vm-smoke  a short run of that VM harness (part of make test)
#   make bench-monitor     lwk-monitor's own cost at 1 s sampling (root, ~3 min)
#   make bench-accounting  gathering and merging a 10,000-node job's records
#   make demo       a local Slurm, an LWK job and a Linux job (root)
#   make install    PREFIX=/usr DESTDIR=... (binaries, plugin, examples)
#   make packages   .deb and .rpm into build/packages/ (scripts/packages)
#   make install-test  install them into a fresh Debian 12 root and run the
#                   demo there (root; debootstrap, cached in build/roots/)

GO        ?= go
# /usr: the plugin's built-in defaults (/usr/libexec/slurm-lwk/lwk-prolog,
# /usr/bin/lwkctl) then need no plugstack.conf arguments.
PREFIX    ?= /usr
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec/slurm-lwk
DOCDIR    ?= $(PREFIX)/share/doc/slurm-lwk
PLUGINDIR ?= /usr/lib/x86_64-linux-gnu/slurm-wlm
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# errorlint: errors.Is/As only, %w for wrapped errors.
ERRORLINT ?= github.com/polyfloyd/go-errorlint@v1.8.0

COMMANDS  = lwk-prolog lwk-epilog lwk-monitor lwkctl lwk-sim-mcexec
BINARIES  = $(addprefix bin/,$(COMMANDS))
GOFILES   = $(shell find cmd pkg internal tests -name '*.go' 2>/dev/null)

.PHONY: all build spank deps test unit e2e test-vm lint bench bench-isolation demo install clean

all: build spank

build: $(BINARIES)

# Static binaries (CGO_ENABLED=0): pflag imports net, whose cgo resolver
# would otherwise link libc, so every prolog and epilog would pay for the
# dynamic loader and cgo's threads at start.
bin/%: $(GOFILES) go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/$*

spank:
	$(MAKE) -C spank spank_lwk.so

deps:
	scripts/slurm-local deps

test: deps lint unit e2e test-vm test-vm-smoke

unit:
	$(GO) test -count=1 ./...
	$(GO) test -race ./pkg/ihk/ioctl/ ./pkg/journal/
	$(MAKE) -C spank test

e2e: deps build spank
	scripts/e2e

# Takes /tmp/slurm-lwk-e2e.lock for the cluster's lifetime.
.PHONY: test-cluster
test-cluster: deps build spank
	GO=$(GO) SLURM_LWK_PLUGIN=$(CURDIR)/spank/spank_lwk.so SLURM_LWK_BINDIR=$(CURDIR)/bin scripts/slurm-cluster test

test-vm:
	scripts/vm-testdrv

# Slurm series for test-matrix (scripts/slurm-matrix builds the plugin for
# each against that series' headers).
MATRIX_SERIES ?= 22.05 24.11 26.05

# The series, then the three-node cluster (22.05, this machine's Slurm).
.PHONY: test-matrix
test-matrix: build
	scripts/slurm-matrix test $(MATRIX_SERIES)
	$(MAKE) test-cluster

lint:
	@out=$$(gofmt -l cmd pkg internal tests); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./tests/...
	$(GO) vet -tags vmnode ./tests/vmnode/
	$(GO) vet -tags cluster ./tests/cluster/
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./tests/e2e/
	$(GO) run $(STATICCHECK) -tags vmnode ./tests/vmnode/
	$(GO) run $(STATICCHECK) -tags cluster ./tests/cluster/
	$(GO) run $(ERRORLINT) ./...
	GOFLAGS=-tags=e2e $(GO) run $(ERRORLINT) ./tests/e2e/
	GOFLAGS=-tags=vmnode $(GO) run $(ERRORLINT) ./tests/vmnode/
	GOFLAGS=-tags=cluster $(GO) run $(ERRORLINT) ./tests/cluster/

bench: build spank
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/plan/
	$(MAKE) -C spank test_shim
	spank/test_shim spank/spank_lwk.so --bench
	$(GO) run ./tools/benchlifecycle --bin bin

# Paper Table 2: the Linux job on CPU 1, the proxies' OS core CPU 0.
bench-isolation:
	$(GO) run ./tools/benchisolation --app-cpu 1 --os-cpus 0 --rounds 5 --duration 1s
# lwk-monitor benchmarks (issue 11).
.PHONY: bench-monitor bench-accounting
bench-monitor: build
	$(GO) run ./tools/benchmonitor --bin bin --rounds 6 --round 12s

bench-accounting:
	$(GO) run ./tools/benchaccounting --nodes 10000 --rounds 3

demo: deps build spank
	scripts/demo

install: build spank
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(PLUGINDIR)
	install -m 0755 bin/lwkctl $(DESTDIR)$(BINDIR)/lwkctl
	install -m 0755 bin/lwk-monitor $(DESTDIR)$(SBINDIR)/lwk-monitor
	install -m 0755 bin/lwk-prolog bin/lwk-epilog bin/lwk-sim-mcexec $(DESTDIR)$(LIBEXECDIR)/
	install -m 0755 spank/spank_lwk.so $(DESTDIR)$(PLUGINDIR)/spank_lwk.so
	install -m 0644 README.md lwk.conf.example slurm.conf.example plugstack.conf.example \
		cgroup.conf.example job_submit.lua.example $(DESTDIR)$(DOCDIR)/

# Packages: see scripts/packages and the README's install section.
.PHONY: packages install-test
packages:
	scripts/packages

install-test: packages
	tests/packages/install-test

# build/go.mod stays: it keeps build/ out of the module's ./... patterns.
clean:
	rm -rf bin
	find build -mindepth 1 -maxdepth 1 ! -name go.mod -exec rm -rf --one-file-system {} +
	$(MAKE) -C spank clean

# Node preparation VM harness (scripts/vm-node): Debian's own kernel under
# QEMU with a NUMA layout like the paper's; downloads only Debian packages;
# caches under build/vm. FRAG_SECS of stress per run, one run per variant
# and seed.
FRAG_SECS  ?= 60
FRAG_SEEDS ?= 1 2 3

.PHONY: bench-frag test-vm-smoke

bench-frag:
	scripts/vm-node compare $(FRAG_SECS) $(FRAG_SEEDS)

test-vm-smoke:
	scripts/vm-node smoke
