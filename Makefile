# somaflow — see README.md.
GO      ?= go
BIN     ?= bin/somaflow
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/somaflow/somaflow/cli.Version=$(VERSION)
# Real-system suites need more than go test's default 10 minutes.
TEST_TIMEOUT ?= 30m
# Fuzzing stops after a number of inputs, not a duration: with a duration,
# Go before 1.27 can fail a target that found nothing, with "context
# deadline exceeded", when its time runs out under load (go.dev/issue/75804).
FUZZTIME ?= 200000x

.PHONY: build build-drmaa install man test test-race lint fuzz bench bench-full demo clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/somaflow

# The DRMAA backend needs libdrmaa and its header: see docs/drmaa.md.
# CGO_CFLAGS / CGO_LDFLAGS from the environment win; the defaults are
# Debian's Grid Engine (gridengine-drmaa-dev).
DRMAA_DIR ?= /usr/lib/gridengine-drmaa
build-drmaa:
	CGO_CFLAGS="$${CGO_CFLAGS:--DSOG -I$(DRMAA_DIR)/include}" \
	CGO_LDFLAGS="$${CGO_LDFLAGS:--L$(DRMAA_DIR)/lib -Wl,-rpath,$(DRMAA_DIR)/lib}" \
	$(GO) build -tags drmaa -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/somaflow

# make install PREFIX=/opt/somaflow/0.1.0: the binary, its man page, shell
# completions, the modulefiles and systemd units (PREFIX defaults to /usr/local; DESTDIR
# for packagers).
PREFIX ?= /usr/local
install: build man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(PREFIX)/share/somaflow
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/somaflow
	install -m 0644 bin/somaflow.1 $(DESTDIR)$(PREFIX)/share/man/man1/somaflow.1
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/somaflow
	$(BIN) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_somaflow
	$(BIN) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/somaflow.fish
	cp -R contrib/modulefiles contrib/systemd $(DESTDIR)$(PREFIX)/share/somaflow/
	sed -i "s#/usr/local/bin/somaflow#$(PREFIX)/bin/somaflow#" $(DESTDIR)$(PREFIX)/share/somaflow/systemd/*
	sed -i "s#/opt/somaflow/0.1.0#$(PREFIX)#" $(DESTDIR)$(PREFIX)/share/somaflow/modulefiles/*/somaflow/*

# The manual page, made from the command tree (somaflow man).
man: build
	$(BIN) man > bin/somaflow.1

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	$(GO) test -run XXX -timeout $(TEST_TIMEOUT) -fuzz '^FuzzDecodeSoma$$' -fuzztime $(FUZZTIME) ./model
	$(GO) test -run XXX -timeout $(TEST_TIMEOUT) -fuzz '^FuzzDecodeNative$$' -fuzztime $(FUZZTIME) ./model

# Benchmarks against the fork/exec floor, make and xargs: docs/benchmarks.md.
# BENCHFLAGS adds flags (e.g. BENCHFLAGS='-rounds 7 -profile').
bench:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/somaflow
	$(GO) build -o bin/somaflow-bench ./cmd/somaflow-bench
	bin/somaflow-bench -mode quick -bin $(BIN) -out bench-out $(BENCHFLAGS)

bench-full:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/somaflow
	$(GO) build -o bin/somaflow-bench ./cmd/somaflow-bench
	bin/somaflow-bench -mode full -bin $(BIN) -out bench-out -profile $(BENCHFLAGS)

demo: build
	bash scripts/demo.sh $(BIN)

clean:
	rm -rf bin
