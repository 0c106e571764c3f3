# meshlet: the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it needs (Debian packages, Go tools, the test
# kube-apiserver), so they work on a fresh machine.

GO      ?= go
BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/meshlet/meshlet/internal/version.Version=$(VERSION)
# Packages with a main function under <component>/cmd/: every binary of the product.
MAINS    = $(shell $(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./... | grep /cmd/)

.PHONY: all build test unit vet lint fmt bench bench-fortio bench-pairs demo e2e deps tools kube-bins generate fuzz clean

all: build

build: ## every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(MAINS)

deps: ## Debian packages the tests use (iptables, iproute2, util-linux, curl, nghttp2 client and server), installed when missing
	@scripts/deps.sh

kube-bins: ## build (once, cached outside the repo) the kube-apiserver and etcd the tests run
	@scripts/kube-bins.sh >/dev/null

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

unit: ## the Go tests alone, with the race detector (no setup)
	$(GO) test -race -count=1 ./...

test: deps kube-bins vet ## vet, then every test with -race, against a real kube-apiserver
	MESHLET_KUBE_BIN_DIR="$$(scripts/kube-bins.sh)" $(GO) test -race -count=1 -timeout 30m ./...

lint: vet
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

bench: build ## Go benchmarks (-benchmem), then the loopback load run (direct vs 1 proxy vs the mTLS mesh path)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...
	$(GO) run ./test/loadrun -bin $(BIN)

FORTIO := $(CURDIR)/.tools/bin/fortio

bench-fortio: build ## the loopback load run driven by fortio v1.68.2 (installed into .tools/) instead of the built-in loader
	@test -x $(FORTIO) || GOBIN=$(CURDIR)/.tools/bin $(GO) install fortio.org/fortio@v1.68.2
	$(GO) run ./test/loadrun -bin $(BIN) -loader fortio -fortio $(FORTIO)

bench-pairs: build ## added latency at 1,000 req/s, the mesh path and direct taking turns in 5 s slices (20 kept pairs, fortio)
	@test -x $(FORTIO) || GOBIN=$(CURDIR)/.tools/bin $(GO) install fortio.org/fortio@v1.68.2
	$(GO) run ./test/loadrun -bin $(BIN) -loader fortio -fortio $(FORTIO) -paths mesh -pairs 20 -max-steal 3

fuzz: ## each fuzz target for FUZZTIME (default 20s)
	@scripts/fuzz.sh $${FUZZTIME:-20s}

generate: tools ## regenerate the committed gRPC code
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" $(GO) generate ./...

tools:
	@command -v protoc >/dev/null || scripts/deps.sh protobuf-compiler
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

demo: build ## a real mesh on this machine: a demo service under load through mTLS proxies, ~20 s, then a report
	$(BIN)/meshctl dev demo

e2e: deps kube-bins ## the end-to-end mesh alone (root): real kube-apiserver, pods as network namespaces, iptables capture
	MESHLET_KUBE_BIN_DIR="$$(scripts/kube-bins.sh)" $(GO) test -race -count=1 -timeout 20m -v ./test/e2e/

clean:
	rm -rf $(BIN)
