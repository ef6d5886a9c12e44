# bids_dfc: two commands set up everything on a fresh Debian/Ubuntu machine with Python >= 3.10
#   make demo   virtual environment + install + demo dataset + participant and group levels
#   make test   virtual environment + test extras + the whole test suite (what .ci/run calls)
# and for the edit loop: make test-fast (no slow/container/SLURM/browser tests), make lint
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo_out
DEMO_SUBJECTS ?= 12
NPROCS ?= 2
BIDS_VALIDATOR_VERSION ?= 1.15.0
export NIPYPE_NO_ET := 1
export MPLBACKEND := Agg

.PHONY: demo test test-fast install tools sysdeps lint clean-demo image

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "bids_dfc needs Python >= 3.10"' \
		|| { echo "bids_dfc needs Python >= 3.10 (set PYTHON=python3.x)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -e '.[test]'
	touch $@

install: $(VENV)/.installed

# the npm BIDS validator, installed into the project (no global install needed)
.tools/bids-validator/node_modules/.bin/bids-validator:
	@command -v npm >/dev/null || { echo "npm not found: install nodejs and npm (apt-get install nodejs npm) for BIDS validation"; exit 0; }
	npm install --silent --no-audit --no-fund --prefix .tools/bids-validator bids-validator@$(BIDS_VALIDATOR_VERSION) || echo "npm install of bids-validator failed: BIDS validation will be skipped"

tools: .tools/bids-validator/node_modules/.bin/bids-validator

# system packages the browser/cluster/container tests and the R reference models of the
# trial tests use (root only; tests skip without them)
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		extra=$$(command -v npm >/dev/null || echo "nodejs npm"); \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSDEPS) $$extra >/dev/null; \
	else echo "not root: skipping apt-get install of $(SYSDEPS)"; fi

SYSDEPS ?= chromium podman runc fuse-overlayfs uidmap debootstrap slurmctld slurmd slurm-client munge \
	r-base-core r-cran-lme4 r-cran-lmertest r-cran-emmeans r-cran-jsonlite

demo: install tools
	rm -rf $(DEMO_DIR)
	$(BIN)/bids-dfc-demo $(DEMO_DIR)/bids --n-subjects $(DEMO_SUBJECTS) --seed 1
	$(BIN)/bids-dfc $(DEMO_DIR)/bids $(DEMO_DIR)/derivatives participant -w $(DEMO_DIR)/work \
		--nprocs $(NPROCS) --sloppy
	$(BIN)/bids-dfc $(DEMO_DIR)/bids $(DEMO_DIR)/derivatives group --config-file demo/group.toml
	@echo
	@echo "Demo finished."
	@echo "  input dataset:        $(DEMO_DIR)/bids (ground truth in $(DEMO_DIR)/bids_truth)"
	@echo "  participant outputs:  $(DEMO_DIR)/derivatives/sub-*"
	@echo "  participant reports:  $(DEMO_DIR)/derivatives/sub-*.html"
	@echo "  group results:        $(DEMO_DIR)/derivatives/group/ (report: group/report.html)"

# two workers, one test module each at a time (--dist loadfile: a module's fixtures, its
# SLURM cluster or container image, stay in one process); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2
test: install tools
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20

# the edit loop: every test but the four slow tiers (markers in setup.cfg, tests/conftest.py)
FAST_TIERS ?= not slow and not container and not slurm and not browser
test-fast: install tools
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "$(FAST_TIERS)"

# ruff over the code; mypy (mypy.ini) over the nipype-free packages' type hints
lint: install
	$(BIN)/ruff check bids_dfc tests benchmarks validation scripts
	$(BIN)/mypy

clean-demo:
	rm -rf $(DEMO_DIR)

# the container image, built offline from a local Debian base and a wheelhouse (docs/docker.md)
image: install
	PYTHON=$(BIN)/python docker/build-wheelhouse.sh docker/wheelhouse
	docker/build-base.sh
	. docker/podman-env.sh && podman build --pull=never \
		--build-arg BASE_IMAGE=localhost/debian:bookworm-slim -t localhost/bids_dfc:0.1.0 .
