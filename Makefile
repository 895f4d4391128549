# kubefwd — see README.md. Every target works on a fresh clone.

GO ?= go
# The first build of the devcluster binaries takes several minutes; tests
# against a real cluster need more than go test's default 10 minutes then.
TEST_TIMEOUT ?= 45m

.PHONY: all build test vet fmt-check devcluster-binaries demo clean

all: build

build:
	$(GO) build -o bin/kubefwd ./cmd/kubefwd

# Everything: formatting, vet, and every test (unit and real-cluster) with
# the race detector. Builds the cluster binaries first, with visible progress,
# so that the test binaries find them cached.
test: fmt-check vet devcluster-binaries
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l cmd internal test)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

devcluster-binaries:
	$(GO) run ./test/devcluster build

# A real local cluster seeded with the demo workloads, and kubefwd against it.
# Ctrl-C stops both and removes everything they created.
demo:
	@bash hack/demo.sh

clean:
	rm -rf bin
