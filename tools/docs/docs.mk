# The documentation site (tools/docs/build.py): `make docs` builds _docs/ from the notebooks (offline: quarto when
# installed, else Sphinx); `make test-docs` builds it and checks it (pages, links, images, no
# directive text, screenshots in Chromium into artifacts/docs-screenshots/) and packs it as
# artifacts/docs-site.tar.gz, what CI publishes (_docs/ is never committed). It runs last in
# `make test`, after the e2e notebooks have left their executed copies in
# artifacts/e2e-notebooks/. The builder's unit tests and the guide's YAML examples against the
# API server (tests/docs/test_build.py, test_examples.py) run in the main pytest.
.PHONY: docs test-docs

docs:
	$(PYTHON) -m tools.docs.build

test-docs: docs
	@echo "==> checking the docs site (tests/docs)"
	MOCK_ACCEL_DOCS_BUILT=1 $(PYTHON) -m pytest -p no:cacheprovider \
		tests/docs/test_site.py tests/docs/test_screenshots.py
	@mkdir -p $(ARTIFACTS) && tar -czf $(ARTIFACTS)/docs-site.tar.gz -C _docs . && \
		echo "==> the checked site, to publish: $(ARTIFACTS)/docs-site.tar.gz" \
		"(screenshots: $(ARTIFACTS)/docs-screenshots/)"

TEST_LAST += test-docs
