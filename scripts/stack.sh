#!/usr/bin/env bash
# The faultlens stack without Docker: OpenTelemetry Collector (ocb build), Jaeger v2,
# VictoriaLogs (the logs backend: exception log records, queryable with LogsQL), the
# log-metrics collector (counts exception log records into a metric), Prometheus and
# Alertmanager, all on 127.0.0.1, all from the files in collector/; and Redis, the broker
# of the Celery example and tests (127.0.0.1:6379, nothing persisted).
#
#   scripts/stack.sh deps              build/install every component (cached, see below)
#   scripts/stack.sh --topology gateway up|down|status|urls|start NAME|...
#                                      the two-tier topology of collector/gateway/ instead:
#                                      2 agents, 2 gateways (tail sampling, span metrics,
#                                      remote write), Jaeger, Prometheus, Alertmanager, on
#                                      ports of its own (see "gateway topology" below), so
#                                      it can run beside the default stack.
#                                      Also: FAULTLENS_STACK_TOPOLOGY=gateway.
#   scripts/stack.sh up                start what is not running, wait until healthy, print URLs
#   scripts/stack.sh down              stop everything this state dir started
#   scripts/stack.sh start|stop|restart NAME   one component: collector jaeger victorialogs
#                                      logmetrics prometheus alertmanager redis
#   scripts/stack.sh status
#   scripts/stack.sh urls [SERVICE]    where to look (links that work on the running stack);
#                                      with SERVICE, also links to its traces and errors
#                                      (what `make stack-demo` prints)
#   scripts/stack.sh bin NAME          path of a component's binary (exit 1 when not installed)
#   scripts/stack.sh render            write the runtime configs into the state dir (up, start
#                                      and restart do this first; see "rendering" below)
#   scripts/stack.sh reload prometheus re-read the rendered config and rules (as they are in
#                                      the state dir: tests drop extra rule files there)
#
# Builds are cached outside the clone, one directory per component and version
# ($FAULTLENS_CACHE_DIR, default ~/.cache/faultlens): a second `deps` costs nothing.
# Prometheus, Alertmanager, promtool, docker-compose and redis-server come from Debian's
# packages.
#
# Linux only: processes are watched through /proc and started with setsid, and `deps`
# installs with apt-get. On other systems it stops with that message; run the same stack
# with docker compose (docker-compose.yml) there.
#
# Environment (all optional):
#   FAULTLENS_CACHE_DIR        build cache (default $CACHE_DIR or ~/.cache/faultlens)
#   FAULTLENS_STACK_DIR        state: rendered configs, data, logs, pids (default .faultlens/stack,
#                              .faultlens/stack-gateway for the gateway topology)
#   FAULTLENS_STACK_TOPOLOGY   default | gateway (same as --topology)
#   FAULTLENS_GATEWAY_SAMPLING_PERCENTAGE, FAULTLENS_GATEWAY_DECISION_WAIT  read by
#                              collector/gateway/gateway.yaml (share of non-error traces kept,
#                              default 10; how long a trace is collected before deciding, 10s)
#   FAULTLENS_STACK_INTERVAL   Prometheus scrape + rule evaluation interval, e.g. 2s for tests.
#                              Unset, the interval of collector/prometheus.yml (15s) is kept.
#   FAULTLENS_ALERT_WEBHOOK_URL  where Alertmanager posts alerts (default: the URL written in
#                              collector/alertmanager.yml, http://127.0.0.1:9099/hook)
#   FAULTLENS_STACK_EXTRA_RULES  a rules file (or directory of *.yml) added next to the shipped rules
#   FAULTLENS_SPANMETRICS_FLUSH_INTERVAL, FAULTLENS_COLLECTOR_* ...  read by collector/otelcol.yaml
set -euo pipefail

# --- pinned versions -------------------------------------------------------------------
# The collector: core v0.165.0 (and the builder, ocb, of the same release) with contrib
# v0.165.1, contrib's patch release of 0.165, which is built on core v0.165.0. The
# collector reports the contrib version (dist.version in collector/builder-config.yaml),
# which is also the tag of the upstream image in docker-compose.yml.
OTELCOL_VERSION=0.165.0
OTELCOL_CONTRIB_VERSION=0.165.1
# Jaeger v2 lives in the Go module github.com/jaegertracing/jaeger (no /v2 suffix): each v2
# release commit is also tagged v1.x, and that tag is the module version (v2.13.0 = v1.76.0).
JAEGER_VERSION=2.13.0
JAEGER_MODULE_VERSION=v1.76.0
# The collector of the gateway topology (collector/gateway/builder-config.yaml, one binary for
# both tiers): core and contrib v0.161.0, the newest release at which the module proxy serves
# the loadbalancing exporter and a tail sampling processor whose dependencies it also serves.
OTELCOL_GATEWAY_VERSION=0.161.0
# VictoriaLogs, the stack's logs backend (the collector's `logs` pipeline ends there). Chosen
# because it ingests OTLP logs natively (POST /insert/opentelemetry/v1/logs, the collector's
# otlp_http exporter needs nothing else), answers LogsQL over HTTP (/select/logsql/query,
# JSON lines, no client library needed) and builds from its Go module into one static
# binary (CGO off) that keeps its data in one directory: no JVM, no cluster, no second
# store (Loki needs object storage or a ring, OpenSearch a JVM, ClickHouse a C++ build).
# Built as its own main module from app/victoria-logs, like Jaeger (see build_victorialogs).
VICTORIALOGS_VERSION=1.52.1
# The log-metrics collector (collector/logmetrics/): the `count` connector turning exception
# log records into faultlens_exception_logs_total. Its own build at 0.161.0 because the
# connector (OTTL conditions) needs pkg/ottl/contexts/xprofile from 0.162.0 on, which the
# module proxy does not serve at the main release (the same reason as the gateway build).
OTELCOL_LOGMETRICS_VERSION=0.161.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF="$ROOT/collector"
CACHE="${FAULTLENS_CACHE_DIR:-${CACHE_DIR:-$HOME/.cache/faultlens}}"
HOST=127.0.0.1

# --topology gateway (or FAULTLENS_STACK_TOPOLOGY=gateway), taken from anywhere on the
# command line before main() sees the rest.
TOPOLOGY="${FAULTLENS_STACK_TOPOLOGY:-default}"
ARGS=()
while (($#)); do
  case "$1" in
    --topology) TOPOLOGY="${2:?--topology needs a value: default or gateway}" && shift 2 ;;
    --topology=*) TOPOLOGY="${1#--topology=}" && shift ;;
    *) ARGS+=("$1") && shift ;;
  esac
done
set -- ${ARGS[@]+"${ARGS[@]}"}

# Start order; `down` stops in reverse (in the gateway topology: agents first, so that what
# they hold reaches the gateways, then the gateways, then the backends).
case "$TOPOLOGY" in
  default)
    STATE="${FAULTLENS_STACK_DIR:-$ROOT/.faultlens/stack}"
    COMPONENTS=(jaeger victorialogs logmetrics collector prometheus alertmanager redis)
    ;;
  gateway)
    STATE="${FAULTLENS_STACK_DIR:-$ROOT/.faultlens/stack-gateway}"
    COMPONENTS=(jaeger prometheus alertmanager gateway-1 gateway-2 agent-1 agent-2)
    ;;
  *)
    printf '[stack] error: unknown topology: %s (default or gateway)\n' "$TOPOLOGY" >&2
    exit 2
    ;;
esac

known_component() {
  [[ " ${COMPONENTS[*]} " == *" $1 "* ]] ||
    die "unknown component: $1 (one of: ${COMPONENTS[*]})"
}

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
  printf '[stack] error: %s\n' "$*" >&2
  exit 1
}

# What the build depends on: the manifest without its comments.
manifest_hash() { grep -v '^[[:space:]]*#' "$CONF/builder-config.yaml" | sha256sum | cut -c1-10; }
otelcol_dir() { echo "$CACHE/otelcol-$OTELCOL_CONTRIB_VERSION-$(manifest_hash)"; }
jaeger_dir() { echo "$CACHE/jaeger-$JAEGER_VERSION"; }
gateway_manifest_hash() {
  grep -v '^[[:space:]]*#' "$CONF/gateway/builder-config.yaml" | sha256sum | cut -c1-10
}
otelcol_gateway_dir() { echo "$CACHE/otelcol-gateway-$OTELCOL_GATEWAY_VERSION-$(gateway_manifest_hash)"; }
victorialogs_dir() { echo "$CACHE/victorialogs-$VICTORIALOGS_VERSION"; }
logmetrics_manifest_hash() {
  grep -v '^[[:space:]]*#' "$CONF/logmetrics/builder-config.yaml" | sha256sum | cut -c1-10
}
otelcol_logmetrics_dir() {
  echo "$CACHE/otelcol-logmetrics-$OTELCOL_LOGMETRICS_VERSION-$(logmetrics_manifest_hash)"
}

bin_path() {
  case "$1" in
    collector | otelcol) echo "$(otelcol_dir)/otelcol-faultlens" ;;
    otelcol-gateway | agent-[0-9]* | gateway-[0-9]*)
      echo "$(otelcol_gateway_dir)/otelcol-faultlens-gateway"
      ;;
    jaeger) echo "$(jaeger_dir)/jaeger" ;;
    victorialogs) echo "$(victorialogs_dir)/victoria-logs" ;;
    logmetrics | otelcol-logmetrics) echo "$(otelcol_logmetrics_dir)/otelcol-faultlens-logmetrics" ;;
    prometheus) command -v prometheus || echo /usr/bin/prometheus ;;
    alertmanager) command -v prometheus-alertmanager || echo /usr/bin/prometheus-alertmanager ;;
    redis) command -v redis-server || echo /usr/bin/redis-server ;;
    promtool) command -v promtool || echo /usr/bin/promtool ;;
    amtool) command -v amtool || echo /usr/bin/amtool ;;
    docker-compose) command -v docker-compose || echo /usr/bin/docker-compose ;;
    *) die "unknown component: $1" ;;
  esac
}

# --- deps ------------------------------------------------------------------------------
go_env() {
  command -v go >/dev/null || die "Go is needed to build the collector and Jaeger (not on PATH)"
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
}

# An ocb build into the cache: $1 what it is (for the log), $2 the builder's release, $3 the
# manifest, $4 the cache directory, $5 the binary's name (dist.name of the manifest).
build_ocb() {
  local what="$1" version="$2" manifest="$3" dir="$4" name="$5" start
  local ocb="$CACHE/ocb-$version" bin="$dir/$name"
  if [[ -x "$bin" ]]; then
    log "$what: cached at $bin"
    return
  fi
  go_env
  start=$SECONDS
  if [[ ! -x "$ocb/builder" ]]; then
    log "installing ocb $version"
    mkdir -p "$ocb"
    GOBIN="$ocb" go install "go.opentelemetry.io/collector/cmd/builder@v$version"
  fi
  log "building the $what with ocb (a few minutes the first time)"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  # The manifest's dist.output_path (./_build) is relative to the directory ocb runs in.
  (cd "$dir.tmp" && "$ocb/builder" --config "$manifest")
  mv "$dir.tmp/_build/$name" "$dir.tmp/$name"
  rm -rf "$dir.tmp/_build" "$dir"
  mv "$dir.tmp" "$dir"
  log "$what built in $((SECONDS - start))s: $bin"
}

build_otelcol() {
  build_ocb "collector $OTELCOL_CONTRIB_VERSION" "$OTELCOL_VERSION" \
    "$CONF/builder-config.yaml" "$(otelcol_dir)" otelcol-faultlens
}

# The gateway topology's collector, with its own manifest and builder release
# (collector/gateway/builder-config.yaml says why it differs).
build_otelcol_gateway() {
  build_ocb "gateway-topology collector $OTELCOL_GATEWAY_VERSION" "$OTELCOL_GATEWAY_VERSION" \
    "$CONF/gateway/builder-config.yaml" "$(otelcol_gateway_dir)" otelcol-faultlens-gateway
}

# The log-metrics collector (collector/logmetrics/builder-config.yaml says why it is a build
# of its own, at the gateway build's release).
build_otelcol_logmetrics() {
  build_ocb "log-metrics collector $OTELCOL_LOGMETRICS_VERSION" "$OTELCOL_LOGMETRICS_VERSION" \
    "$CONF/logmetrics/builder-config.yaml" "$(otelcol_logmetrics_dir)" \
    otelcol-faultlens-logmetrics
}

build_jaeger() {
  local dir bin start json src
  dir="$(jaeger_dir)"
  bin="$dir/jaeger"
  if [[ -x "$bin" ]]; then
    log "jaeger $JAEGER_VERSION: cached at $bin"
    return
  fi
  go_env
  start=$SECONDS
  log "building jaeger $JAEGER_VERSION (module $JAEGER_MODULE_VERSION; a few minutes the first time)"
  # Built as Jaeger's own main module, from its source in the module cache, so that Jaeger's
  # go.mod and go.sum choose every dependency exactly as in its release build, including
  # its `replace` of github.com/Shopify/sarama (which is why `go install pkg@version`
  # refuses it, and why a wrapper module requiring it would build different code).
  json="$(cd / && GOFLAGS='' go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_MODULE_VERSION")" ||
    die "cannot download github.com/jaegertracing/jaeger@$JAEGER_MODULE_VERSION: $json"
  src="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
  [[ -f "$src/go.mod" ]] || die "go mod download gave no source directory for jaeger: $json"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  (
    cd "$src"
    # -mod=readonly: the module's own go.sum is complete; nothing may be re-resolved.
    GOFLAGS=-mod=readonly go build -trimpath -o "$dir.tmp/jaeger" \
      -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v$JAEGER_VERSION" \
      ./cmd/jaeger
  )
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  log "jaeger built in $((SECONDS - start))s: $bin"
}

# VictoriaLogs' single-node server (app/victoria-logs: ingestion, storage and LogsQL in one
# process), built like Jaeger: as its own main module from its source in the module cache,
# with its go.mod and go.sum choosing every dependency as in its release build. CGO off: the
# pure-Go zstd and no C toolchain needed (upstream's `make victoria-logs-pure` does the same).
build_victorialogs() {
  local dir bin start json src
  dir="$(victorialogs_dir)"
  bin="$dir/victoria-logs"
  if [[ -x "$bin" ]]; then
    log "victorialogs $VICTORIALOGS_VERSION: cached at $bin"
    return
  fi
  go_env
  start=$SECONDS
  log "building victorialogs $VICTORIALOGS_VERSION (a few minutes the first time)"
  json="$(cd / && GOFLAGS='' go mod download -json "github.com/VictoriaMetrics/VictoriaLogs@v$VICTORIALOGS_VERSION")" ||
    die "cannot download github.com/VictoriaMetrics/VictoriaLogs@v$VICTORIALOGS_VERSION: $json"
  src="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
  [[ -f "$src/go.mod" ]] || die "go mod download gave no source directory for victorialogs: $json"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  (
    cd "$src"
    # The version `victoria-logs -version` prints (upstream's Makefile sets it the same way).
    GOFLAGS=-mod=readonly go build -trimpath -o "$dir.tmp/victoria-logs" \
      -ldflags "-X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=victoria-logs-v$VICTORIALOGS_VERSION" \
      ./app/victoria-logs
  )
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  log "victorialogs built in $((SECONDS - start))s: $bin"
}

install_debian() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if ((${#missing[@]} == 0)); then
    log "prometheus, alertmanager, promtool, docker-compose, redis-server: installed"
    return
  fi
  command -v apt-get >/dev/null ||
    die "not installed: ${missing[*]}; this script installs them with apt-get (Debian), which is not here: install them with your system's packages"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  local start=$SECONDS
  log "installing from Debian: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  log "Debian packages installed in $((SECONDS - start))s"
}

cmd_deps() {
  mkdir -p "$CACHE"
  install_debian
  build_otelcol
  build_jaeger
  build_otelcol_gateway # the gateway topology's (collector/gateway/)
  build_victorialogs
  build_otelcol_logmetrics
}

# --- rendering the runtime configuration -----------------------------------------------
# Prometheus and Alertmanager cannot read environment variables in their config files, so
# the shipped files are copied into the state dir and only the two values tests need to
# change are substituted: the intervals and the webhook URL. Everything else is verbatim.
render() {
  local interval="${FAULTLENS_STACK_INTERVAL:-}" url="${FAULTLENS_ALERT_WEBHOOK_URL:-}"
  # Prometheus' config and targets: the gateway topology has its own (remote write in, no
  # exporter to scrape); rules and Alertmanager's config are the same for both.
  local prom_conf="$CONF" targets="$CONF/targets/local"
  [[ "$TOPOLOGY" != gateway ]] || prom_conf="$CONF/gateway" targets="$CONF/gateway/targets/local"
  # Both values are written into config files: check them before anything is written.
  [[ -z "$interval" || "$interval" =~ ^([0-9]+(ms|s|m|h|d|w|y))+$ ]] ||
    die "FAULTLENS_STACK_INTERVAL must be a Prometheus duration such as 2s or 1m30s, not '$interval'"
  [[ -z "$url" || "$url" =~ ^https?://[^[:space:][:cntrl:]]+$ ]] ||
    die "FAULTLENS_ALERT_WEBHOOK_URL must be an http:// or https:// URL without spaces, not '$url'"
  mkdir -p "$STATE"/{logs,run,prometheus/data,prometheus/rules,prometheus/targets} \
    "$STATE"/{alertmanager/data,collector/file_storage,redis}
  if [[ -n "$interval" ]]; then
    sed -E -e "s/^(  scrape_interval:).*/\1 $interval/" \
      -e "s/^(  evaluation_interval:).*/\1 $interval/" \
      "$prom_conf/prometheus.yml" >"$STATE/prometheus/prometheus.yml"
  else
    cp "$prom_conf/prometheus.yml" "$STATE/prometheus/prometheus.yml"
  fi
  rm -f "$STATE"/prometheus/rules/*.yml
  cp "$CONF"/rules/*.yml "$STATE/prometheus/rules/"
  if [[ -n "${FAULTLENS_STACK_EXTRA_RULES:-}" ]]; then
    if [[ -d "$FAULTLENS_STACK_EXTRA_RULES" ]]; then
      cp "$FAULTLENS_STACK_EXTRA_RULES"/*.yml "$STATE/prometheus/rules/"
    else
      cp "$FAULTLENS_STACK_EXTRA_RULES" "$STATE/prometheus/rules/"
    fi
  fi
  rm -f "$STATE"/prometheus/targets/*.yml
  cp "$targets"/*.yml "$STATE/prometheus/targets/"
  if [[ -n "$url" ]]; then
    render_webhook_url "$url" <"$CONF/alertmanager.yml" >"$STATE/alertmanager/alertmanager.yml"
  else
    cp "$CONF/alertmanager.yml" "$STATE/alertmanager/alertmanager.yml"
  fi
}

# stdin -> stdout: alertmanager.yml with each `url: http://127.0.0.1:9099/hook` value
# replaced by the URL in $1, written as a YAML double-quoted string. No sed and no pattern
# substitution: a URL may hold any of & # \ | / " and must arrive in the file unchanged.
render_webhook_url() {
  local url="$1" quoted line
  quoted="${url//\\/\\\\}"  # \ -> \\ (YAML double-quoted escapes, as in JSON)
  quoted="\"${quoted//\"/\\\"}\""  # " -> \"
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ ^([[:space:]]*(-[[:space:]]+)?url:[[:space:]]+)http://127\.0\.0\.1:9099/hook[[:space:]]*$ ]]; then
      printf '%s%s\n' "${BASH_REMATCH[1]}" "$quoted"
    else
      printf '%s\n' "$line"
    fi
  done
}

# --- processes -------------------------------------------------------------------------
pidfile() { echo "$STATE/run/$1.pid"; }

running() {
  local pf pid
  pf="$(pidfile "$1")"
  [[ -f "$pf" ]] || return 1
  pid="$(cat "$pf")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: the process must run our very binary. Compared by the
  # executable's resolved path, not by a name inside the command line (where `prometheus`
  # would also match `prometheus-alertmanager`, or any process with it in an argument).
  is_our_binary "$pid" "$(bin_path "$1")"
}

# Does process $1 execute the file $2? /proc/PID/exe names the running executable (with
# " (deleted)" appended when the file was replaced since, e.g. by a package upgrade).
is_our_binary() {
  local exe want
  exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 1
  exe="${exe% (deleted)}"
  want="$(readlink -f -- "$2" 2>/dev/null)" || return 1
  [[ "$exe" == "$want" ]]
}

health_url() {
  case "$TOPOLOGY:$1" in
    default:collector) echo "http://$HOST:13133/" ;;
    default:jaeger) echo "http://$HOST:16686/api/services" ;;
    default:victorialogs) echo "http://$HOST:9428/health" ;;
    default:logmetrics) echo "http://$HOST:13134/" ;;
    default:prometheus) echo "http://$HOST:9090/-/ready" ;;
    default:alertmanager) echo "http://$HOST:9093/-/ready" ;;
    default:redis) echo "redis://$HOST:6379 (PING)" ;;
    gateway:jaeger) echo "http://$HOST:$(gw_port jaeger query_http)/api/services" ;;
    gateway:prometheus) echo "http://$HOST:$(gw_port prometheus http)/-/ready" ;;
    gateway:alertmanager) echo "http://$HOST:$(gw_port alertmanager http)/-/ready" ;;
    gateway:*) echo "http://$HOST:$(gw_port "$1" health)/" ;;
  esac
}

ports() {
  case "$TOPOLOGY:$1" in
    default:collector) echo "4317 4318 13133 8888 8889" ;;
    default:jaeger) echo "14317 14318 16685 16686" ;;
    default:victorialogs) echo "9428" ;;
    default:logmetrics) echo "4319 13134 8890" ;;
    default:prometheus) echo "9090" ;;
    default:alertmanager) echo "9093" ;;
    default:redis) echo "6379" ;;
    gateway:*) gw_port "$1" all ;;
  esac
}

# --- gateway topology --------------------------------------------------------------------
# Its ports, all on 127.0.0.1 and none shared with the default stack (DESIGN.md's ports), so
# both can run at once:
#   agent-1    OTLP gRPC 4417, HTTP 4418, health 13233, own metrics 8988   <- apps send here
#   agent-2    OTLP gRPC 4427, HTTP 4428, health 13243, own metrics 8998   <- and here
#   gateway-1  sampling input 4517, metrics input 4518, health 13333, own metrics 9088
#   gateway-2  sampling input 4527, metrics input 4528, health 13343, own metrics 9098
#   jaeger     OTLP 24317/24318, query gRPC 26685, query HTTP (API) 26686
#   prometheus 19090 (remote-write receiver: /api/v1/write)   alertmanager 19093
# collector/gateway/agent.yaml's default gateway lists and targets/local/*.yml say the same.
gw_port() {
  local name="$1" what="$2" n=""
  case "$name" in
    agent-[0-9]* | gateway-[0-9]*) n="${name##*-}" ;;
  esac
  case "$name:$what" in
    agent-*:grpc) echo $((4407 + 10 * n)) ;;
    agent-*:http) echo $((4408 + 10 * n)) ;;
    agent-*:health) echo $((13223 + 10 * n)) ;;
    agent-*:telemetry) echo $((8978 + 10 * n)) ;;
    agent-*:all) echo "$(gw_port "$name" grpc) $(gw_port "$name" http) $(gw_port "$name" health) $(gw_port "$name" telemetry)" ;;
    gateway-*:sampling) echo $((4507 + 10 * n)) ;;
    gateway-*:metrics) echo $((4508 + 10 * n)) ;;
    gateway-*:health) echo $((13323 + 10 * n)) ;;
    gateway-*:telemetry) echo $((9078 + 10 * n)) ;;
    gateway-*:all) echo "$(gw_port "$name" sampling) $(gw_port "$name" metrics) $(gw_port "$name" health) $(gw_port "$name" telemetry)" ;;
    jaeger:otlp_grpc) echo 24317 ;;
    jaeger:otlp_http) echo 24318 ;;
    jaeger:query_grpc) echo 26685 ;;
    jaeger:query_http) echo 26686 ;;
    jaeger:all) echo "24317 24318 26685 26686" ;;
    prometheus:http | prometheus:all) echo 19090 ;;
    alertmanager:http | alertmanager:all) echo 19093 ;;
    *) die "no port $what for $name" ;;
  esac
}

# The gateway list every agent gets (the same for all: the ring is built from it).
gw_endpoints() {
  local kind="$1" out="" c
  for c in "${COMPONENTS[@]}"; do
    [[ "$c" == gateway-* ]] || continue
    out+="${out:+, }$HOST:$(gw_port "$c" "$kind")"
  done
  echo "[$out]"
}

start_gateway_topology_one() {
  local name="$1"
  case "$name" in
    jaeger)
      FAULTLENS_JAEGER_OTLP_GRPC_ENDPOINT="$HOST:$(gw_port jaeger otlp_grpc)" \
        FAULTLENS_JAEGER_OTLP_HTTP_ENDPOINT="$HOST:$(gw_port jaeger otlp_http)" \
        FAULTLENS_JAEGER_QUERY_GRPC_ENDPOINT="$HOST:$(gw_port jaeger query_grpc)" \
        FAULTLENS_JAEGER_QUERY_HTTP_ENDPOINT="$HOST:$(gw_port jaeger query_http)" \
        launch jaeger --config "$CONF/jaeger.yaml"
      ;;
    prometheus)
      # The gateways write here: --web.enable-remote-write-receiver (POST /api/v1/write).
      launch prometheus \
        --config.file="$STATE/prometheus/prometheus.yml" \
        --storage.tsdb.path="$STATE/prometheus/data" \
        --web.listen-address="$HOST:$(gw_port prometheus http)" \
        --web.enable-lifecycle \
        --web.enable-remote-write-receiver
      ;;
    alertmanager)
      launch alertmanager \
        --config.file="$STATE/alertmanager/alertmanager.yml" \
        --storage.path="$STATE/alertmanager/data" \
        --web.listen-address="$HOST:$(gw_port alertmanager http)" \
        --cluster.listen-address=
      ;;
    gateway-*)
      mkdir -p "$STATE/$name/storage"
      FAULTLENS_GATEWAY_SAMPLING_ENDPOINT="$HOST:$(gw_port "$name" sampling)" \
        FAULTLENS_GATEWAY_METRICS_ENDPOINT="$HOST:$(gw_port "$name" metrics)" \
        FAULTLENS_GATEWAY_HEALTH_ENDPOINT="$HOST:$(gw_port "$name" health)" \
        FAULTLENS_GATEWAY_TELEMETRY_HOST="$HOST" \
        FAULTLENS_GATEWAY_TELEMETRY_PORT="$(gw_port "$name" telemetry)" \
        FAULTLENS_GATEWAY_STORAGE_DIR="$STATE/$name/storage" \
        FAULTLENS_JAEGER_OTLP_ENDPOINT="$HOST:$(gw_port jaeger otlp_grpc)" \
        FAULTLENS_GATEWAY_REMOTE_WRITE_URL="http://$HOST:$(gw_port prometheus http)/api/v1/write" \
        launch "$name" --config "$CONF/gateway/gateway.yaml"
      ;;
    agent-*)
      mkdir -p "$STATE/$name/storage"
      FAULTLENS_AGENT_OTLP_GRPC_ENDPOINT="$HOST:$(gw_port "$name" grpc)" \
        FAULTLENS_AGENT_OTLP_HTTP_ENDPOINT="$HOST:$(gw_port "$name" http)" \
        FAULTLENS_AGENT_HEALTH_ENDPOINT="$HOST:$(gw_port "$name" health)" \
        FAULTLENS_AGENT_TELEMETRY_HOST="$HOST" \
        FAULTLENS_AGENT_TELEMETRY_PORT="$(gw_port "$name" telemetry)" \
        FAULTLENS_AGENT_STORAGE_DIR="$STATE/$name/storage" \
        FAULTLENS_GATEWAY_SAMPLING_ENDPOINTS="$(gw_endpoints sampling)" \
        FAULTLENS_GATEWAY_METRICS_ENDPOINTS="$(gw_endpoints metrics)" \
        launch "$name" --config "$CONF/gateway/agent.yaml"
      ;;
    *) die "unknown component: $name" ;;
  esac
}

# Redis answers PING with +PONG: asked over a raw socket (bash's /dev/tcp), so the check
# needs neither redis-cli nor curl. Fails when nothing listens or something else answers.
redis_ping() {
  local reply=""
  (
    exec 3<>"/dev/tcp/$HOST/6379" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ "$reply" == "+PONG"* ]]
  ) 2>/dev/null
}

# Is component $1 answering? An HTTP health endpoint for most, PING for Redis.
healthy() {
  case "$1" in
    redis) redis_ping ;;
    *) curl -fs -o /dev/null --max-time 2 "$(health_url "$1")" ;;
  esac
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

launch() {
  local name="$1"
  shift
  local bin
  bin="$(bin_path "$name")"
  [[ -x "$bin" ]] || die "$name is not installed ($bin); run: make stack-deps"
  for p in $(ports "$name"); do
    if port_busy "$p"; then
      # Debian's package starts its own redis-server service where systemd runs.
      [[ "$name" != redis ]] ||
        die "port $HOST:$p (for redis) is already in use by another process (Debian's redis-server service? sudo systemctl disable --now redis-server)"
      die "port $HOST:$p (for $name) is already in use by another process"
    fi
  done
  # setsid: its own process group, so a Ctrl-C in the calling shell does not stop it.
  setsid "$bin" "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

start_one() {
  local name="$1"
  if running "$name"; then
    log "$name already running (pid $(cat "$(pidfile "$name")"))"
    return
  fi
  if [[ "$TOPOLOGY" == gateway ]]; then
    start_gateway_topology_one "$name"
    wait_healthy "$name"
    return
  fi
  case "$name" in
    collector)
      FAULTLENS_COLLECTOR_STORAGE_DIR="${FAULTLENS_COLLECTOR_STORAGE_DIR:-$STATE/collector/file_storage}" \
        launch collector --config "$CONF/otelcol.yaml"
      ;;
    jaeger)
      launch jaeger --config "$CONF/jaeger.yaml"
      ;;
    victorialogs)
      # Loopback only (its one listener: HTTP, for ingestion, LogsQL and its web UI at
      # /select/vmui/); data kept for 7 days in the state dir.
      mkdir -p "$STATE/victorialogs/data"
      launch victorialogs \
        -httpListenAddr="$HOST:9428" \
        -storageDataPath="$STATE/victorialogs/data" \
        -retentionPeriod=7d
      ;;
    logmetrics)
      FAULTLENS_LOGMETRICS_STORAGE_DIR="${FAULTLENS_LOGMETRICS_STORAGE_DIR:-$STATE/logmetrics/file_storage}" \
        launch logmetrics --config "$CONF/logmetrics/logmetrics.yaml"
      ;;
    prometheus)
      launch prometheus \
        --config.file="$STATE/prometheus/prometheus.yml" \
        --storage.tsdb.path="$STATE/prometheus/data" \
        --web.listen-address="$HOST:9090" \
        --web.enable-lifecycle
      ;;
    alertmanager)
      # --cluster.listen-address= turns off gossip, which would bind all interfaces (:9094).
      launch alertmanager \
        --config.file="$STATE/alertmanager/alertmanager.yml" \
        --storage.path="$STATE/alertmanager/data" \
        --web.listen-address="$HOST:9093" \
        --cluster.listen-address=
      ;;
    redis)
      # A broker for tests and the Celery example: loopback only, its own working
      # directory in the state dir, nothing persisted (no RDB snapshots, no AOF), no
      # config file (Debian's /etc/redis/redis.conf is the system service's).
      launch redis \
        --bind "$HOST" --port 6379 --protected-mode yes \
        --dir "$STATE/redis" --save "" --appendonly no \
        --daemonize no --logfile ""
      ;;
    *) die "unknown component: $name" ;;
  esac
  wait_healthy "$name"
}

wait_healthy() {
  local name="$1" where deadline
  where="$(health_url "$name")"
  deadline=$((SECONDS + ${FAULTLENS_STACK_START_TIMEOUT:-60}))
  until healthy "$name"; do
    # Liveness by pid alone here: right after launch the process may still be `setsid`
    # about to exec the binary, which the cmdline check in running() would misread.
    if ! kill -0 "$(cat "$(pidfile "$name")")" 2>/dev/null; then
      tail -n 30 "$STATE/logs/$name.log" >&2 || true
      die "$name exited during start-up (log: $STATE/logs/$name.log)"
    fi
    ((SECONDS < deadline)) || die "$name not healthy at $where (log: $STATE/logs/$name.log)"
    sleep 0.3
  done
  log "$name healthy (pid $(cat "$(pidfile "$name")"))"
}

# A process that exited but was not reaped yet (a zombie) still answers kill -0.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

stop_one() {
  local name="$1" pf pid
  pf="$(pidfile "$name")"
  if ! running "$name"; then
    rm -f "$pf"
    return
  fi
  pid="$(cat "$pf")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name did not stop within 20s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
  log "$name stopped"
}

# --- where to look ----------------------------------------------------------------------
# Only links that work on the stack that is running: each http:// URL printed here answers
# 200 (tests/integration/test_stack_links.py checks every one). The local builds have no web
# UIs for Jaeger (a Go module build carries no UI assets: its / is a placeholder page) or
# Alertmanager (Debian's package ships without it), so their APIs are printed instead; and
# Debian's Prometheus serves its UI under /classic/, which is found by asking it.

# Percent-encode $1 for a URL query value (byte by byte, so any UTF-8 text works).
urlencode() {
  local LC_ALL=C s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}

answers_200() { [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1")" == 200 ]]; }

# The base URL of the Prometheus web UI: /classic on Debian's build, / on upstream's.
prometheus_ui() {
  local base="http://$HOST:9090"
  if answers_200 "$base/classic/graph"; then
    echo "$base/classic"
  else
    echo "$base"
  fi
}

cmd_urls_gateway() {
  local prom jaeger am c
  local -A off=()
  for c in "${COMPONENTS[@]}"; do running "$c" || off[$c]="   (not running)"; done
  jaeger="http://$HOST:$(gw_port jaeger query_http)"
  am="http://$HOST:$(gw_port alertmanager http)"
  prom="http://$HOST:$(gw_port prometheus http)"
  if answers_200 "$prom/classic/graph"; then prom="$prom/classic"; fi
  echo "gateway topology (collector/gateway/): apps send OTLP to any agent"
  for c in "${COMPONENTS[@]}"; do
    case "$c" in
      agent-*)
        printf '%-19s %s   (OTLP gRPC; HTTP :%s)%s\n' "$c" "$HOST:$(gw_port "$c" grpc)" \
          "$(gw_port "$c" http)" "${off[$c]:-}"
        ;;
      gateway-*)
        printf '%-19s %s   (health; own metrics :%s)%s\n' "$c" \
          "http://$HOST:$(gw_port "$c" health)/" "$(gw_port "$c" telemetry)" "${off[$c]:-}"
        ;;
    esac
  done
  cat <<EOF
Jaeger API          $jaeger/api/services${off[jaeger]:-}
Prometheus          $prom/graph${off[prometheus]:-}
Prometheus alerts   $prom/alerts${off[prometheus]:-}
Alertmanager API    $am/api/v2/alerts${off[alertmanager]:-}
state dir           $STATE

Non-error traces kept: ${FAULTLENS_GATEWAY_SAMPLING_PERCENTAGE:-10}% (FAULTLENS_GATEWAY_SAMPLING_PERCENTAGE); every
trace with an error is kept whole. Span metrics and app metrics arrive in Prometheus by
remote write from the gateways.
EOF
}

# The LogsQL query for the exception log records of service $1, newest first (the name
# written as a LogsQL string: backslashes and double quotes escaped).
exception_logsql() {
  local name="${1//\\/\\\\}"
  name="${name//\"/\\\"}"
  printf '{service.name="%s"} event_name:=exception | sort by (_time desc)' "$name"
}

cmd_urls() {
  local service="${1:-}" prom jaeger="http://$HOST:16686" am="http://$HOST:9093" q
  local vl="http://$HOST:9428"
  if [[ "$TOPOLOGY" == gateway ]]; then
    cmd_urls_gateway
    return
  fi
  local -A off=()
  for c in "${COMPONENTS[@]}"; do running "$c" || off[$c]="   (not running)"; done
  prom="$(prometheus_ui)"
  cat <<EOF
OTLP gRPC           $HOST:4317${off[collector]:-}
OTLP HTTP           $HOST:4318   (POST /v1/traces, /v1/metrics, /v1/logs)${off[collector]:-}
collector health    http://$HOST:13133/${off[collector]:-}
collector metrics   http://$HOST:8889/metrics${off[collector]:-}
collector's own     http://$HOST:8888/metrics${off[collector]:-}
Jaeger API          $jaeger/api/services${off[jaeger]:-}
VictoriaLogs UI     $vl/select/vmui/   (LogsQL API: $HOST:9428/select/logsql/query)${off[victorialogs]:-}
log-metrics health  http://$HOST:13134/${off[logmetrics]:-}
Prometheus          $prom/graph${off[prometheus]:-}
Prometheus alerts   $prom/alerts${off[prometheus]:-}
Alertmanager API    $am/api/v2/alerts${off[alertmanager]:-}
Redis (broker)      redis://$HOST:6379/0${off[redis]:-}
state dir           $STATE
EOF
  if [[ -n "$service" ]]; then
    q="$(urlencode "sum by (code, category) (faultlens_errors_total{job=\"$service\"})")"
    cat <<EOF

$service:
  traces (JSON)     $jaeger/api/traces?service=$(urlencode "$service")&limit=20
  errors by code    $prom/graph?g0.expr=$q&g0.tab=1
  exception logs    $vl/select/vmui/#/?query=$(urlencode "$(exception_logsql "$service")")   (opens on the last 5 minutes: widen it at the top right)
  logs (JSON)       $vl/select/logsql/query?query=$(urlencode "$(exception_logsql "$service")")&limit=20
EOF
  fi
  cat <<EOF

Jaeger and Alertmanager built here have no web UI (Jaeger's Go module carries no UI assets,
Debian's Alertmanager ships without one): their addresses above are their APIs (JSON). For
both UIs run the same stack with docker compose (docker-compose.yml): Jaeger's on port
16686, Alertmanager's on 9093.
EOF
}

cmd_up() {
  render
  for c in "${COMPONENTS[@]}"; do start_one "$c"; done
  cmd_urls
}

cmd_down() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_one "${COMPONENTS[$i]}"; done
}

cmd_status() {
  local rc=0
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then
      echo "$c running (pid $(cat "$(pidfile "$c")"))"
    else
      echo "$c stopped"
      rc=3
    fi
  done
  return $rc
}

# The process management needs Linux: /proc (liveness of a pid, which binary it runs) and
# setsid (util-linux). Elsewhere, say so instead of failing half-way with an odd error.
require_linux() {
  [[ "$(uname -s)" == Linux && -d /proc/self ]] ||
    die "scripts/stack.sh runs the stack on Linux only (it uses /proc and setsid); on $(uname -s), use docker compose (docker-compose.yml)"
  command -v setsid >/dev/null ||
    die "setsid (util-linux) is needed to start the stack's processes and is not on PATH"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    deps | up | down | start | stop | restart | status) require_linux ;;
  esac
  case "$cmd" in
    deps) cmd_deps ;;
    up) cmd_up ;;
    down) cmd_down ;;
    start)
      known_component "${1:?component}"
      render
      start_one "$1"
      ;;
    stop)
      known_component "${1:?component}"
      stop_one "$1"
      ;;
    restart)
      # Rendered again, like start: a restart picks up changed collector/ files and
      # FAULTLENS_* settings (that is what a restart is usually for).
      known_component "${1:?component}"
      render
      stop_one "$1"
      start_one "$1"
      ;;
    reload)
      [[ "${1:-prometheus}" == prometheus ]] || die "only prometheus can be reloaded"
      if [[ "$TOPOLOGY" == gateway ]]; then
        curl -fsS -X POST "http://$HOST:$(gw_port prometheus http)/-/reload"
      else
        curl -fsS -X POST "http://$HOST:9090/-/reload"
      fi
      ;;
    status) cmd_status ;;
    render) render ;;
    urls) cmd_urls "${1:-}" ;;
    bin)
      local b
      b="$(bin_path "${1:?component}")"
      [[ -x "$b" ]] || {
        echo "$b"
        exit 1
      }
      echo "$b"
      ;;
    *)
      # The header comment, from line 2 up to the first line that is not a comment.
      awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
      [[ -z "$cmd" || "$cmd" == help || "$cmd" == -h ]] || exit 2
      ;;
  esac
}

main "$@"
