# The bundled stack (collector, Jaeger, Prometheus, Alertmanager) on 127.0.0.1 without
# Docker; see scripts/stack.sh. Builds are cached in $(CACHE_DIR)/<component>-<version>/.

STACK := scripts/stack.sh
STACK_ENV := FAULTLENS_CACHE_DIR=$(CACHE_DIR)
# What `make stack-demo` runs against the stack (any OTLP-exporting app will do).
STACK_DEMO_CMD ?= $(BIN)/faultlens demo --endpoint http://127.0.0.1:4317 --service faultlens-demo

.PHONY: stack-deps stack-up stack-down stack-status stack-demo

# Build the collector (ocb) and Jaeger, install Prometheus, Alertmanager, promtool and
# docker-compose from Debian: everything tests/stack and tests/integration need.
stack-deps:
	@$(STACK_ENV) $(STACK) deps

stack-up: stack-deps
	@$(STACK_ENV) $(STACK) up

stack-down:
	@$(STACK_ENV) $(STACK) down

stack-status:
	@$(STACK_ENV) $(STACK) status

# Run the example app with its telemetry going to the local stack, then show where to look.
stack-demo: venv stack-up
	$(STACK_DEMO_CMD)
	@echo
	@echo "traces:  http://127.0.0.1:16686/api/traces?service=faultlens-demo"
	@echo "errors:  http://127.0.0.1:9090/graph?g0.expr=sum%20by%20(code)%20(faultlens_errors_total)"
	@echo "alerts:  http://127.0.0.1:9090/alerts   http://127.0.0.1:9093"
	@echo "stop it: make stack-down"

TEST_DEPS += stack-deps
