# The two commands a newcomer needs: `make run` (the whole suite locally) and `make test`
# (everything CI checks). Tool versions are pinned here, in one place, and installed into
# the git-ignored bin/.

SHELL := /bin/bash
.DEFAULT_GOAL := help

BUF_VERSION            := v1.75.0
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION   := v2.33.0
KUBE_SCORE_VERSION     := v1.20.0

BIN := $(CURDIR)/bin
export GOBIN := $(BIN)
# Every module of the workspace, addressed by import path so one `go test` covers them all
# (a bare `go test ./...` at the root covers none: the root is not a module).
MODULE_PATTERNS := $(shell go list -m -f '{{.Path}}/...' 2>/dev/null)
GO_TEST_FLAGS ?= -race -count=1 -timeout 45m

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# --- tools -------------------------------------------------------------------------------

$(BIN)/.buf-$(BUF_VERSION):
	@mkdir -p $(BIN)
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	@touch $@

$(BIN)/.plugins-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GRPC_VERSION)-$(GRPC_GATEWAY_VERSION):
	@mkdir -p $(BIN)
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION) \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
	@touch $@

$(BIN)/.kube-score-$(KUBE_SCORE_VERSION):
	@mkdir -p $(BIN)
	go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)
	@touch $@

.PHONY: tools
tools: $(BIN)/.buf-$(BUF_VERSION) $(BIN)/.plugins-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GRPC_VERSION)-$(GRPC_GATEWAY_VERSION) ## Install the pinned code generators into bin/.

# --- contracts ---------------------------------------------------------------------------

.PHONY: generate
generate: tools ## Regenerate Go code and OpenAPI documents from proto/ (lint and format first).
	$(BIN)/buf format --exit-code --diff --path proto/forge
	$(BIN)/buf lint
	rm -rf pkg/gen pkg/apidocs/openapi
	$(BIN)/buf generate

.PHONY: check-generated
check-generated: generate ## Fail when committed generated code differs from what proto/ produces.
	@if [ -n "$$(git status --porcelain -- pkg/gen pkg/apidocs/openapi)" ]; then \
		echo "generated code is stale: run 'make generate' and commit the result"; \
		git status --porcelain -- pkg/gen pkg/apidocs/openapi; exit 1; fi

# --- build and run -----------------------------------------------------------------------

SERVICES := $(notdir $(wildcard services/*))
# A service is started by `make run` once it has a main package.
BUILT_SERVICES := $(foreach s,$(SERVICES),$(if $(wildcard services/$(s)/cmd/$(s)/main.go),$(s)))

.PHONY: build
build: ## Build every service binary into bin/.
	@for s in $(BUILT_SERVICES); do echo "go build $$s"; go build -o $(BIN)/$$s ./services/$$s/cmd/$$s || exit 1; done
	go build -o $(BIN)/devstack ./pkg/cmd/devstack

.PHONY: certs
certs: ## Write the development CA and one workload certificate per service into .dev/certs.
	go run ./pkg/cmd/devcerts -dir .dev/certs

.PHONY: run
run: build ## Run the whole suite locally (Postgres, NATS, dev certificates, every service, the gateway).
	$(BIN)/devstack up -root $(CURDIR) -services "$(BUILT_SERVICES)"

.PHONY: reset
reset: ## Delete the local stack's data (every service database, objects, keys, NATS store); stop make run first.
	go run ./pkg/cmd/devstack reset -root $(CURDIR)

# --- test --------------------------------------------------------------------------------

.PHONY: deps
deps: ## Start PostgreSQL and NATS when they are not already answering.
	go run ./pkg/cmd/devstack ensure

.PHONY: vet
vet: ## gofmt (generated code aside) and go vet over every module.
	@unformatted="$$(gofmt -l pkg services deploy | grep -v '^pkg/gen/' || true)"; \
	if [ -n "$$unformatted" ]; then echo "not gofmt-ed (run gofmt -w):"; echo "$$unformatted"; exit 1; fi
	go vet $(MODULE_PATTERNS)

.PHONY: test
test: check-generated deps vet $(BIN)/.kube-score-$(KUBE_SCORE_VERSION) ## Everything CI runs: generated-code check, vet, every module's tests with -race (kube-score included).
	go test $(GO_TEST_FLAGS) $(MODULE_PATTERNS)

.PHONY: lint-k8s
lint-k8s: $(BIN)/.kube-score-$(KUBE_SCORE_VERSION) ## Render and check every deploy/k8s entry, kube-score included.
	go test -count=1 ./deploy/k8s/...

.PHONY: bench
bench: deps ## Run the benchmarks recorded in docs/benchmarks.md.
	go test -run '^$$' -bench . -benchmem -count 5 $(MODULE_PATTERNS)
