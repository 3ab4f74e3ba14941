# envrouter — the two commands: `make demo` (the whole environment in the lab) and `make test`.
# Both do their own set-up on a fresh Debian 12 machine as root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENVROUTER := $(VENV)/bin/envrouter

# Debian packages, from the one table of every program the product, the lab, the tests and the
# benchmarks run (packaging/tools.tsv; the suite checks the same table at its start).
TOOLS := packaging/tools.tsv
HASH := \#
debs_for = $(shell awk -F'\t' '!/^$(HASH)/ && NF == 3 && ($(1)) {print $$2}' $(TOOLS) | sort -u)
DEB_RUNTIME := $(call debs_for,$$3 == "runtime" || $$3 == "lab")
DEB_TEST := $(call debs_for,$$3 != "bench")
DEB_BENCH := $(call debs_for,$$3 == "bench")

# What `make deb` builds with (packaging/tools.tsv, scope packaging; `make deps` installs them too).
DEB_PACKAGING := $(call debs_for,$$3 == "packaging")

.PHONY: help deps deps-runtime deps-bench deps-packaging venv test test-unit lint demo demo-down \
  bench clean deb conntrackd-deb conntrackd-install conntrackd-build-deps

help:
	@echo "make demo   - install what the lab needs, bring up the lab, print its status"
	@echo "make test   - install what the tests need (Debian packages, .venv) and run the suite"
	@echo "make deps-runtime - only the Debian packages the lab needs"
	@echo "make lint   - ruff"
	@echo "make bench  - run the benchmarks under bench/"
	@echo "make deb    - build the Debian packages into build/deb/ and check them with lintian"
	@echo "make conntrackd-install - build envrouter's conntrackd package and install it (deps do)"

# Install only what is missing, so a prepared machine does not wait on apt.
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi
endef

deps-runtime:
	$(call apt_install,$(DEB_RUNTIME))
	$(MAKE) --no-print-directory conntrackd-install

deps:
	$(call apt_install,$(DEB_TEST))
	$(MAKE) --no-print-directory conntrackd-install

# envrouter's conntrackd: the upstream daemon with the patches that keep every NATed flow's port
# on failover (packaging/conntrackd; why: docs/ha.md "At scale"). Built into build/conntrackd
# when its sources change, with debian/control's Build-Depends installed first; installed over
# Debian's conntrackd unless the installed one is that version (debian/changelog). `lab up` and
# the suite check the daemon itself (`conntrackd -v`, envrouter.prerequisites).
CONNTRACKD_DIR := build/conntrackd
CONNTRACKD_SRC := $(shell find packaging/conntrackd -type f 2>/dev/null)
CONNTRACKD_BUILD_DEPS = $(shell dpkg-checkbuilddeps packaging/conntrackd/debian/control 2>&1 | \
  sed -n 's/.*Unmet build dependencies: //p' | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$$')

$(CONNTRACKD_DIR)/.built: $(CONNTRACKD_SRC)
	$(call apt_install,build-essential dpkg-dev debhelper lintian curl ca-certificates)
	$(MAKE) --no-print-directory conntrackd-build-deps
	rm -f $(CONNTRACKD_DIR)/*.deb $(CONNTRACKD_DIR)/*.changes $(CONNTRACKD_DIR)/*.buildinfo
	packaging/conntrackd/build.sh $(CONNTRACKD_DIR)
	touch $@

# a make of its own: dpkg-checkbuilddeps (dpkg-dev) is there only once the line before has run.
# What it installs is marked automatic, as Debian's build-dependency tools leave it: only the
# build needs it, `apt-get autoremove` may take it away, the next build installs it again.
conntrackd-build-deps:
	@deps="$(CONNTRACKD_BUILD_DEPS)"; \
	if [ -n "$$deps" ]; then \
	  echo "installing conntrackd's build dependencies: $$deps"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$deps </dev/null && \
	  apt-mark auto $$deps >/dev/null; \
	fi

conntrackd-deb: $(CONNTRACKD_DIR)/.built

conntrackd-install:
	$(call apt_install,dpkg-dev)
	@want=$$(dpkg-parsechangelog -l packaging/conntrackd/debian/changelog -S Version); \
	if [ "$$(dpkg-query -W -f='$${Version}' conntrackd 2>/dev/null)" = "$$want" ]; then \
	  echo "conntrackd $$want: $$(conntrackd -v | grep Features)"; \
	else \
	  $(MAKE) --no-print-directory conntrackd-deb && \
	  echo "installing $$(ls $(CONNTRACKD_DIR)/conntrackd_*.deb)" && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    ./$(CONNTRACKD_DIR)/conntrackd_*.deb </dev/null >$(CONNTRACKD_DIR)/install.log 2>&1 \
	    || { tail -20 $(CONNTRACKD_DIR)/install.log; exit 1; }; \
	  conntrackd -v | grep Features; \
	fi

deps-bench:
	$(call apt_install,$(DEB_BENCH))

deps-packaging:
	$(call apt_install,$(DEB_PACKAGING))

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check src tests bench

test: deps venv
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -q -ra --durations=30

test-unit: venv
	$(PY) -m pytest -q tests/unit

demo: deps-runtime venv
	$(ENVROUTER) lab up
	$(ENVROUTER) lab status || true
	@echo
	@echo "The lab is up. Log in to the UI (open the page, paste the token):"
	@$(ENVROUTER) lab login
	@echo
	@echo "Next:"
	@echo "  login:   $(ENVROUTER) lab login   (prints the page and the token again)"
	@echo "  drills:  $(ENVROUTER) lab drill all"
	@echo "  a node:  $(ENVROUTER) lab exec cmp1 -- ping -c3 <management VIP>"
	@echo "  stop:    $(ENVROUTER) lab down"

demo-down: venv
	$(ENVROUTER) lab down

bench: deps deps-bench venv
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The packages: build/deb/envrouter_<version>_<arch>.deb, envrouter-controller_..., and
# envrouter-server_... . Built from a copy of the working tree (tracked and untracked files,
# not ignored ones) in build/deb/src, so dpkg-buildpackage writes its results into build/deb/;
# downloaded wheels stay in build/pip-cache for the next build.
DEB_DIR := build/deb
deb: deps-packaging
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src build/pip-cache
	git ls-files -z --cached --others --exclude-standard | \
	  tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C $(DEB_DIR)/src -xf -
	cd $(DEB_DIR)/src && PIP_CACHE_DIR=$(CURDIR)/build/pip-cache \
	  dpkg-buildpackage -b -us -uc --no-sign
	lintian --fail-on error --info $(DEB_DIR)/*.changes
	@ls -1 $(DEB_DIR)/*.deb

clean:
	rm -rf $(VENV) build *.egg-info
