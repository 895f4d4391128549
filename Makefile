# kubefwd — see README.md. Every target works on a fresh clone.

GO ?= go
# The first build of the devcluster binaries takes several minutes; tests
# against a real cluster need more than go test's default 10 minutes then.
TEST_TIMEOUT ?= 45m
# Linters at pinned versions, run with go run (nothing to install).
STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.9.0
GORELEASER_VERSION ?= v2.15.1
# make dist: the version stamped (default: git describe) and the platforms
# built (default: every released one), e.g. TARGETS="linux/amd64 darwin/arm64".
VERSION ?= $(shell git describe --tags --always --dirty)
TARGETS ?=

.PHONY: all build test vet fmt-check cross devcluster-binaries demo bench bench-quick soak soak-quick clean lint staticcheck govulncheck check-tracked hostile dist dist-check release

all: build

build:
	$(GO) build -o bin/kubefwd ./cmd/kubefwd

# Everything: formatting, vet, and every test (unit and real-cluster) with
# the race detector. Builds the cluster binaries first, with visible progress,
# so that the test binaries find them cached.
test: fmt-check vet cross devcluster-binaries
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# Benchmarks against kubectl port-forward on the devcluster: writes
# BENCHMARKS.md and bench/results/*.json. `make bench ARGS=--quick` is
# bench-quick, the small run CI keeps working.
bench: devcluster-binaries
	$(GO) run ./bench $(ARGS)

bench-quick: devcluster-binaries
	$(GO) run ./bench --quick $(ARGS)

# A working day in half an hour: kubefwd under steady traffic and a seeded
# schedule of faults on the devcluster. Writes RELIABILITY.md and
# soak/results/*.json; `make soak ARGS="--seed=N"` replays a run.
soak: devcluster-binaries
	$(GO) run ./soak $(ARGS)

# Every fault kind once (about 3 minutes): fails only when a fault could
# not be caused or a connection failed while a ready replica existed.
soak-quick: devcluster-binaries
	$(GO) run ./soak --quick $(ARGS)

# kubefwd must keep building where it is not tested here.
cross:
	@for target in darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do \
		echo "go build ./cmd/kubefwd for $$target"; \
		GOOS=$${target%/*} GOARCH=$${target#*/} $(GO) build -o /dev/null ./cmd/kubefwd || exit 1; \
	done

vet:
	$(GO) vet ./...

# Static analysis, known vulnerabilities, and no compiled programs or large
# binaries in git.
lint: check-tracked staticcheck govulncheck

# The hostile-local-user suite (every TestHostile* test, as root, none
# skipped): what an ordinary user could make root, or the helper, do.
hostile: devcluster-binaries
	GO=$(GO) bash hack/hostile.sh

# Also the release tool (a module of its own, so ./... does not reach it).
# govulncheck covers kubefwd only: the release tool ships nothing.
staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) -C release run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# vuln.go.dev where it answers, else the database built from the
# golang.org/x/vulndb module on the module proxy (see the script).
govulncheck:
	GO="$(GO)" GOVULNCHECK_VERSION=$(GOVULNCHECK_VERSION) bash hack/govulncheck.sh ./...

check-tracked:
	@bash hack/check-tracked.sh

fmt-check:
	@out="$$(gofmt -l cmd internal test release)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

devcluster-binaries:
	$(GO) run ./test/devcluster build

# A real local cluster seeded with the demo workloads, and kubefwd against it.
# Ctrl-C stops both and removes everything they created.
demo:
	@bash hack/demo.sh

# Release artifacts into dist/: reproducible binaries, archives, Linux
# packages, SBOMs, the krew/Homebrew/Scoop manifests and SHA256SUMS. The
# release tool is a module of its own (release/go.mod).
dist:
	$(GO) -C release run . --go "$(GO)" --targets "$(TARGETS)" --version "$(VERSION)"

# make dist for this platform and one more, checked: checksums, a second
# build's bytes, the .deb installed and removed (as root), completions, man
# pages, goreleaser check.
dist-check:
	GO="$(GO)" GORELEASER_VERSION=$(GORELEASER_VERSION) bash hack/dist-check.sh

# A tagged release (HEAD must be the tag): GoReleaser builds and publishes
# what make dist builds. Needs GITHUB_TOKEN.
release:
	$(GO) run github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION) release --clean

clean:
	rm -rf bin dist
