# pecarchive: `make demo` runs the main job end to end on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 3s
TOOLS := $(shell scripts/tools.sh --print-dir 2>/dev/null)

.PHONY: all build demo test vet unit fuzz proto-check tools clean

all: build

build:
	$(GO) build -o bin/pecarchive ./cmd/pecarchive

# The main job end to end on embedded defaults: every PEC kind generated and inspected, then a
# whole conversation archived (write-once files + the local PostgreSQL, started if none runs),
# delivery states, a log inclusion proof against a signed checkpoint, an audit, and an evidence
# bundle of the conversation exported and verified offline.
demo: build
	scripts/postgres.sh >&2
	./bin/pecarchive demo --archive

tools:
	scripts/tools.sh

# Every test: vet, proto lint, generated-code and breaking-change checks, unit and integration
# tests against real PostgreSQL / S3 servers, then a short run of every fuzz target.
test: tools vet proto-check unit fuzz

vet:
	$(GO) vet ./...
	@unformatted=$$($$($(GO) env GOROOT)/bin/gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi

unit:
	scripts/test-env.sh scripts/unit.sh

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

proto-check:
	scripts/proto.sh check

clean:
	rm -rf bin
