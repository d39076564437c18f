# mmcam: `make run` explains the bundled models on the bundled samples; `make test` tests it all.
# Both set up everything they need on a fresh machine.

VENV   := .venv
PYTHON := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install run test lint docs demo bench chromium java screenshots

install: $(VENV)/.installed

# torch 2.14.1 / torchvision 0.29.1 come from this machine's local wheel store (pip is capped there).
$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PYTHON) -m pip install -q -e ".[all,dev]"
	touch $@

# The browser tests drive Debian's chromium; install it when missing (never a tool's own download).
chromium:
	@command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# pycocoevalcap's PTB tokenizer and METEOR are Java programs (their jars ship inside its wheel,
# nothing is downloaded); install Debian's Java runtime when `java` is missing.
java:
	@command -v java >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

lint: install
	$(VENV)/bin/ruff check .

test: install chromium java lint
	$(VENV)/bin/pytest

# The documentation site in site/ (the tests build it too, strictly, into a temporary folder).
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The demo page's screenshots (the tests write theirs to a temporary folder).
screenshots: install chromium
	MMCAM_SCREENSHOTS=$(CURDIR)/demos/screenshots $(VENV)/bin/pytest tests/app/test_browser.py

run: install
	$(PYTHON) scripts/run_examples.py --out out

demo: install
	$(VENV)/bin/mmcam demo

bench: install
	$(PYTHON) scripts/bench_gradcam.py
	$(PYTHON) scripts/bench_caption.py
	$(PYTHON) scripts/bench_methods.py
