# The bundled stack (collector, Jaeger, VictoriaLogs, the log-metrics collector, Prometheus,
# Alertmanager, Redis) on 127.0.0.1 without Docker; see scripts/stack.sh. Builds are cached in
# $(CACHE_DIR)/<component>-<version>/.

STACK := scripts/stack.sh
STACK_ENV := FAULTLENS_CACHE_DIR=$(CACHE_DIR)
# TOPOLOGY=gateway: `make stack-up TOPOLOGY=gateway` (stack-down, stack-status likewise) runs
# the two-tier topology of collector/gateway/ (2 agents, 2 gateways, Jaeger, Prometheus,
# Alertmanager) on ports of its own; empty: the single-collector stack.
TOPOLOGY ?=
STACK_TOPOLOGY := $(if $(TOPOLOGY),--topology $(TOPOLOGY))
# What `make stack-demo` runs against the stack (any OTLP-exporting app will do).
STACK_DEMO_SERVICE ?= faultlens-demo
STACK_DEMO_CMD ?= $(BIN)/faultlens demo --endpoint http://127.0.0.1:4317 --service $(STACK_DEMO_SERVICE)
# Request traffic through the web examples (FastAPI on uvicorn: shop-api; Flask on gunicorn
# with prefork workers: shop-web), so the stack shows real request errors too.
STACK_DEMO_WEB_CMD ?= $(BIN)/python examples/web_traffic.py --endpoint http://127.0.0.1:4317
# The scoring jobs as Celery tasks on the stack's Redis: a prefork worker under `faultlens run`
# (scorer-worker), a producer, a warm stop (examples/celery_worker).
STACK_DEMO_CELERY_CMD ?= $(BIN)/python examples/celery_worker --endpoint http://127.0.0.1:4317 \
	--broker redis://127.0.0.1:6379/0 --service scorer-worker --journal .faultlens/celery-demo/journal

.PHONY: stack-deps stack-up stack-down stack-status stack-demo

# Build the collectors (ocb: the stack's, its log-metrics collector's, the gateway topology's),
# Jaeger and VictoriaLogs, install Prometheus, Alertmanager, promtool,
# docker-compose and redis-server from Debian: everything tests/stack and tests/integration
# need.
stack-deps:
	@$(STACK_ENV) $(STACK) deps

stack-up: stack-deps
	@$(STACK_ENV) $(STACK) $(STACK_TOPOLOGY) up

stack-down:
	@$(STACK_ENV) $(STACK) $(STACK_TOPOLOGY) down

stack-status:
	@$(STACK_ENV) $(STACK) $(STACK_TOPOLOGY) status

# Run the example app with its telemetry going to the local stack, then show where to look:
# the links come from `stack.sh urls`, which prints only addresses that work on the stack
# that is running (tests/integration/test_stack_links.py opens each one).
stack-demo: venv stack-up
	$(STACK_DEMO_CMD)
	$(STACK_DEMO_WEB_CMD)
	$(STACK_DEMO_CELERY_CMD)
	@echo
	@$(STACK_ENV) $(STACK) urls $(STACK_DEMO_SERVICE)
	@$(STACK_ENV) $(STACK) urls shop-api
	@$(STACK_ENV) $(STACK) urls scorer-worker
	@echo
	@echo "stop it: make stack-down"

TEST_DEPS += stack-deps
