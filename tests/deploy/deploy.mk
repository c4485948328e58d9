# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make deploy-check`: static checks of deploy/ (tests/deploy/check.mjs), part
# of `make test`. Manifests against the Kubernetes API schemas (1.29
# structure, 1.33 values) and sidelane's own config parser, the Dockerfile,
# deploy/sidelane-k8s, and the negative fixtures in tests/deploy/bad/.
# Node packages are pinned by tests/deploy/package-lock.json and installed
# once into build/deploy-check/ (npm ci from the npm registry; again only
# when the lock file changes).

DEPLOY_NODE  := $(OUT)/deploy-check
DEPLOY_STAMP := $(DEPLOY_NODE)/node_modules/.installed

$(DEPLOY_STAMP): tests/deploy/package.json tests/deploy/package-lock.json
	$(call msg,NPM-CI,$(DEPLOY_NODE))
	$(Q)command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "deploy-check needs node (>= 18) and npm: apt-get install nodejs npm"; exit 1; }
	$(Q)mkdir -p $(DEPLOY_NODE) && cp tests/deploy/package.json tests/deploy/package-lock.json $(DEPLOY_NODE)/
	$(Q)cd $(DEPLOY_NODE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	$(Q)touch $@

.PHONY: deploy-check
deploy-check: $(DEPLOY_STAMP) $(OUT)/sidelane
	$(call msg,DEPLOY,deploy/)
	$(Q)node tests/deploy/check.mjs --node-dir $(DEPLOY_NODE) \
		--binary $(OUT)/sidelane $(if $(filter 1,$(V)),-v)
