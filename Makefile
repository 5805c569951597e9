# Roost build and packaging. Needs Go and the Go module proxy (for nfpm);
# tar and gzip. See docs/install.md.
#
#   make build                 dist/build/linux-<arch>/roost (version stamped)
#   make dist                  tarball, .deb and .rpm in dist/
#   make dist VERSION=1.2.3    ... with that version (default: packaging/version.sh)
#   make dist ARCH=arm64       ... for another architecture (Go's names)
#   make tarball | deb | rpm   one of them
#   make image                 the container image (needs a Docker engine)
#   make test                  the README's test command
#   make package-test          packaging/ci-test.sh (root + dpkg: installs the .deb!)
#   make clean

GO    ?= go
# nfpm runs as a Go tool from the module proxy; go.mod is not involved.
NFPM  ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

# Evaluated once (":="), each overridable from the command line.
VERSION ?= $(shell packaging/version.sh)
VERSION := $(VERSION)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
COMMIT  := $(COMMIT)
# Build date, UTC; SOURCE_DATE_EPOCH pins it for reproducible builds.
DATE    ?= $(shell if [ -n "$$SOURCE_DATE_EPOCH" ]; then date -u -d "@$$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ; else date -u +%Y-%m-%dT%H:%M:%SZ; fi)
DATE    := $(DATE)
ARCH    ?= $(shell $(GO) env GOARCH)
ARCH    := $(ARCH)

DIST    := dist
BUILD   := $(DIST)/build/linux-$(ARCH)
BIN     := $(BUILD)/roost
MAN     := $(BUILD)/roost.1.gz
TARBALL := $(DIST)/roost-$(VERSION)-linux-$(ARCH).tar.gz
STAGE   := $(DIST)/stage/roost-$(VERSION)-linux-$(ARCH)

LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

.PHONY: all build man dist tarball deb rpm image test package-test clean version FORCE

all: build

version:
	@echo $(VERSION)

# Always rebuilt (Go's cache makes that cheap) so the stamp is current.
build: $(BIN)
$(BIN): FORCE | $(DIST)/.gitignore
	@mkdir -p $(BUILD)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/roost

man: $(MAN)
$(MAN): packaging/roost.1 | $(DIST)/.gitignore
	@mkdir -p $(BUILD)
	gzip -9n < $< > $@

# Build outputs stay out of git without touching the repository's .gitignore.
$(DIST)/.gitignore:
	@mkdir -p $(DIST)
	@echo '*' > $@

dist: tarball deb rpm
	@echo "built in $(DIST)/ (version $(VERSION), linux/$(ARCH)):"
	@ls -l $(DIST)/*.tar.gz $(DIST)/*.deb $(DIST)/*.rpm

# roost/bin/roost, roost/etc/roost.conf, roost/data/, roost/README,
# roost/share/man/man1/roost.1; owned by root in the archive, files dated
# by the build date.
tarball: $(BIN)
	rm -rf $(STAGE)
	install -d -m 0755 $(STAGE)/roost/bin $(STAGE)/roost/etc $(STAGE)/roost/share/man/man1
	install -d -m 0700 $(STAGE)/roost/data
	install -m 0755 $(BIN) $(STAGE)/roost/bin/roost
	install -m 0640 etc/roost.conf $(STAGE)/roost/etc/roost.conf
	install -m 0644 packaging/tarball/README $(STAGE)/roost/README
	install -m 0644 packaging/roost.1 $(STAGE)/roost/share/man/man1/roost.1
	tar -C $(STAGE) --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime='$(DATE)' -czf $(TARBALL) roost
	rm -rf $(STAGE)
	@rmdir $(DIST)/stage 2>/dev/null || true
	@echo "$(TARBALL)"

deb rpm: $(BIN) $(MAN)
	VERSION='$(VERSION)' ARCH='$(ARCH)' BUILD='$(BUILD)' $(NFPM) package \
		--config packaging/nfpm.yaml --packager $@ --target $(DIST)/

# Docker tags take no "+": 0.0.0-dev+abc1234 is tagged 0.0.0-dev-abc1234.
IMAGE ?= roost
image:
	docker build -t $(IMAGE):$(subst +,-,$(VERSION)) \
		--build-arg VERSION='$(VERSION)' --build-arg COMMIT='$(COMMIT)' --build-arg DATE='$(DATE)' .

test:
	$(GO) test -race -count=1 ./...

package-test:
	bash packaging/ci-test.sh

clean:
	rm -rf $(DIST)

FORCE:
