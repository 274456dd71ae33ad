# The README's two commands: `make plan` (offline plan of a stack) and `make test` (every test layer that runs here).
STACK ?= prod
GO    ?= go
# Two packages at a time: each test binary that links the Pulumi SDKs needs ~5 GB and a core. enginetest runs every
# stack on the stand-ins, the day-2 matrix, every stack on the real Kubernetes provider and the sandbox on real
# kubelets with its drills: about 20 minutes on a loaded 2-core machine.
GOTEST_FLAGS ?= -p 2 -timeout 45m

.PHONY: plan test test-infra test-runtime vet fmt-check inventories tools bench

plan:
	$(GO) run ./cmd/omsctl plan --stack $(STACK)

test: fmt-check vet test-infra test-runtime

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd runtime && $(GO) vet ./...
	cd redisconf && $(GO) vet ./...

# redisconf (the Redis + Sentinel scripts and templates) is its own module, shared by the root and runtime/.
test-infra:
	$(GO) test $(GOTEST_FLAGS) ./...
	cd redisconf && $(GO) test ./...

# Real PostgreSQL, Redis + Sentinel and RabbitMQ processes: never reuse a cached result.
test-runtime:
	cd runtime && $(GO) test $(GOTEST_FLAGS) -count=1 ./...

# The real kube-apiserver (kubeverify/, enginetest/), Pulumi CLI (enginetest/) and Pulumi Kubernetes provider
# (enginetest/'s real-provider test) those layers need; their tests skip without them, except under CI=true.
# Cached in ~/.cache/omscloud: the first build takes 25-60 minutes.
tools:
	bash testtools/k8s-build.sh
	bash testtools/pulumi-build.sh
	bash testtools/k8s-provider-build.sh

# The runtime's benchmark table (bench/README.md): every figure next to a baseline from the same run.
# Default sizes take about 3 minutes; BENCH_FLAGS=--quick runs a ~1.5-minute smoke check.
bench:
	bash bench/run.sh $(BENCH_FLAGS)

# Rewrite stacks/testdata/<stack>.yaml after an intended change; review the diff before committing.
inventories:
	$(GO) test ./stacks -run TestInventories -update
