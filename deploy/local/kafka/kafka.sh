#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for development and tests, without Docker.
#
# The broker is Apache Kafka's own jars, fetched from Maven Central by Maven (pom.xml next to
# this script) and run with the machine's JDK. Everything it writes lives under <repo>/var/kafka
# (KAFKA_VAR moves a broker's own files elsewhere, so a second broker can run beside the first):
#   lib/            the jars (re-fetched when pom.xml changes; shared: KAFKA_LIB)
#   cluster-id      KRaft cluster id, generated once
#   server.properties  rendered from the template next to this script
#   data/           the log + metadata directory (deleted by `reset`)
#   logs/server.log broker log (INFO);  kafka.log  JVM stdout/stderr (WARN+)
#   kafka.pid       PID of the running broker
# See docs/decisions/0002-kafka-version.md and 0003-local-infrastructure.md.
set -euo pipefail

usage() {
  cat <<EOF
usage: $(basename "$0") COMMAND

commands:
  fetch    download the broker jars with Maven if missing or if pom.xml changed
  format   create the cluster id (once) and format the data dir (idempotent)
  start    fetch + format if needed, start the broker in the background (ok if running)
  wait     block until the broker answers a metadata request (deadline KAFKA_WAIT_TIMEOUT)
  stop     SIGTERM the broker by PID, SIGKILL after 30 s
  status   print whether the broker runs (exit 0 running, 3 stopped)
  reset    stop the broker and delete its data dir

environment:
  KAFKA_PORT             client listener on 127.0.0.1 (default 9092)
  KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 9093)
  KAFKA_WAIT_TIMEOUT     seconds for 'wait' (default 90)
  KAFKA_PORT_WAIT        seconds 'start' waits for its ports to be free, e.g. right after a
                         killed broker released them (default 30)
  KAFKA_VAR              the broker's own directory: config, data, logs, pid (default
                         <repo>/var/kafka); another one runs a second, independent broker
  KAFKA_LIB              the jars (default <repo>/var/kafka/lib, shared by every KAFKA_VAR)
  KAFKA_HEAP_OPTS        JVM heap options (default -Xmx512m)
  PYTHON                 interpreter with aiokafka (default <repo>/.venv/bin/python)
EOF
}

# --- locations (relative to this script, never a machine-specific path) ---------------------
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
VAR="${KAFKA_VAR:-$ROOT/var/kafka}"
LIB="${KAFKA_LIB:-$ROOT/var/kafka/lib}"
DATA="$VAR/data"
LOGS="$VAR/logs"
PID_FILE="$VAR/kafka.pid"
CONSOLE_LOG="$VAR/kafka.log"
CLUSTER_ID_FILE="$VAR/cluster-id"
CONFIG="$VAR/server.properties"
LIB_STAMP="$LIB/.pom.sha256"
POM="$HERE/pom.xml"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-90}"
KAFKA_PORT_WAIT="${KAFKA_PORT_WAIT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# The JVM flags Kafka's own kafka-server-start.sh uses, with a heap sized for a 2-core CI box.
# shellcheck disable=SC2206  # KAFKA_HEAP_OPTS is deliberately word-split
JVM_OPTS=($KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dlog4j.configuration=file:$HERE/log4j.properties" "-Dkafka.logs.dir=$LOGS")

log() { echo "kafka: $*"; }
die() { echo "kafka: ERROR: $*" >&2; exit 1; }

kafka_version() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM"; }

# --- tools -----------------------------------------------------------------------------------
# CI starts from a bare Debian: install a JDK and Maven from Debian packages when missing.
ensure_tools() {
  local pkgs=()
  command -v java >/dev/null 2>&1 || pkgs+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${pkgs[*]}; install them (apt-get install ${pkgs[*]}) or run as root"
  log "installing ${pkgs[*]} from Debian packages"
  apt-get update -q || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" || die "apt-get install ${pkgs[*]} failed"
}

# --- fetch -----------------------------------------------------------------------------------
# The stamp is the checksum of pom.xml, so any change there (the Kafka version, the logging
# backend) triggers a fresh download. Jars are copied into a temp dir and swapped in at the
# end, so an interrupted download never leaves a half-filled lib/ that looks complete, and
# jars of an old version never stay on the classpath next to the new ones.
cmd_fetch() {
  ensure_tools  # also needed when lib/ exists: start and format run java
  local want have=""
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  [ -f "$LIB_STAMP" ] && have="$(cat "$LIB_STAMP")"
  if [ -d "$LIB" ] && [ "$have" = "$want" ]; then
    return 0
  fi
  log "fetching Kafka $(kafka_version) jars from Maven Central into $LIB"
  mkdir -p "$(dirname "$LIB")"
  local tmp="$LIB.tmp"
  rm -rf "$tmp"
  # Maven 3.8 prints stray ANSI reset codes even with -B -q; strip them (pipefail keeps mvn's status).
  mvn -B -q -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' \
    || die "mvn could not fetch the Kafka jars (is Maven Central reachable?)"
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "mvn ran but no kafka_2.13 jar is in $tmp"
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  log "fetched $(find "$LIB" -name '*.jar' | wc -l) jars"
}

# --- config ----------------------------------------------------------------------------------
# Rendered on every start/format so that KAFKA_PORT / KAFKA_CONTROLLER_PORT changes apply.
render_config() {
  [[ "$KAFKA_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_PORT must be a number, got '$KAFKA_PORT'"
  [[ "$KAFKA_CONTROLLER_PORT" =~ ^[0-9]+$ ]] || die "KAFKA_CONTROLLER_PORT must be a number"
  [ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  mkdir -p "$VAR" "$LOGS"
  local tpl
  tpl="$(cat "$HERE/server.properties")"
  tpl="${tpl//@KAFKA_PORT@/$KAFKA_PORT}"
  tpl="${tpl//@KAFKA_CONTROLLER_PORT@/$KAFKA_CONTROLLER_PORT}"
  tpl="${tpl//@KAFKA_DATA_DIR@/$DATA}"
  printf '%s\n' "$tpl" >"$CONFIG.tmp"
  mv "$CONFIG.tmp" "$CONFIG"
}

run_java() { java "${JVM_OPTS[@]}" -cp "$LIB/*" "$@"; }

# --- format ----------------------------------------------------------------------------------
cmd_format() {
  local pid
  if pid="$(running_pid)"; then
    log "broker is running (pid $pid), so its storage is formatted; nothing to do"
    return 0
  fi
  cmd_fetch
  render_config
  if [ ! -s "$CLUSTER_ID_FILE" ]; then
    local id
    id="$(run_java kafka.tools.StorageTool random-uuid | tail -n1)"
    [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid returned '$id'"
    echo "$id" >"$CLUSTER_ID_FILE"
    log "new cluster id $id"
  fi
  # --ignore-formatted makes this a no-op on an already formatted data dir.
  run_java kafka.tools.StorageTool format -t "$(cat "$CLUSTER_ID_FILE")" -c "$CONFIG" --ignore-formatted \
    || die "StorageTool format failed (a data dir from another cluster id? try: $0 reset)"
}

# --- process helpers -------------------------------------------------------------------------
# The PID in the pid file is only trusted if that process is a Kafka broker started with our
# config: after a reboot or a crash, the number may belong to an unrelated process.
running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"kafka.Kafka $CONFIG"* ]] || return 1
  echo "$pid"
}

# The client port the running broker was started with (from its rendered config).
running_port() { sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$CONFIG" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A broker killed a moment ago may still hold its ports while the JVM exits: wait for them,
# up to KAFKA_PORT_WAIT seconds, before calling them taken by someone else.
wait_ports_free() {
  [[ "$KAFKA_PORT_WAIT" =~ ^[0-9]+$ ]] || die "KAFKA_PORT_WAIT must be a number of seconds"
  local deadline=$((SECONDS + KAFKA_PORT_WAIT)) port waited=""
  for port in "$@"; do
    while port_open "$port"; do
      if ((SECONDS >= deadline)); then
        die "port 127.0.0.1:$port is still in use by another process (not our broker) after ${KAFKA_PORT_WAIT}s"
      fi
      [ -n "$waited" ] || { log "port 127.0.0.1:$port is in use; waiting up to ${KAFKA_PORT_WAIT}s for it"; waited=1; }
      sleep 0.2
    done
  done
}

tail_logs() {
  echo "---- last lines of $CONSOLE_LOG ----" >&2
  tail -n 40 "$CONSOLE_LOG" >&2 2>/dev/null || echo "(no $CONSOLE_LOG)" >&2
  if [ -f "$LOGS/server.log" ]; then
    echo "---- last ERROR/WARN lines of $LOGS/server.log ----" >&2
    grep -E '\] (ERROR|WARN|FATAL) ' "$LOGS/server.log" | tail -n 20 >&2 || true
  fi
}

# --- start -----------------------------------------------------------------------------------
cmd_start() {
  local pid
  if pid="$(running_pid)"; then
    local port
    port="$(running_port)"
    # Succeeding here while the caller expects another port would only move the failure
    # to a confusing connection error later.
    [ "$port" = "$KAFKA_PORT" ] \
      || die "already running (pid $pid) on 127.0.0.1:$port, not KAFKA_PORT=$KAFKA_PORT; stop it first"
    log "already running (pid $pid, 127.0.0.1:$port)"
    return 0
  fi
  rm -f "$PID_FILE"
  wait_ports_free "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  cmd_fetch
  if [ -f "$DATA/meta.properties" ] && [ -s "$CLUSTER_ID_FILE" ]; then
    render_config  # storage already formatted: skip a JVM start
  else
    cmd_format
  fi

  log "starting Kafka $(kafka_version) on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  # setsid: the broker gets its own session, so it outlives the shell/CI step that started it
  # and a Ctrl-C there does not reach it. The inner shell writes its own PID and then execs
  # java, so the pid file holds the JVM's PID whatever setsid does.
  echo "==== $(date -u +%FT%TZ) start ====" >>"$CONSOLE_LOG"
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java "${JVM_OPTS[@]}" -cp "$LIB/*" kafka.Kafka "$CONFIG" \
    </dev/null >>"$CONSOLE_LOG" 2>&1 &

  # Catch a JVM that dies at once (bad flags, missing class); later failures are `wait`'s job.
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    sleep 0.2
    pid="$(running_pid)" && break
  done
  [ -n "${pid:-}" ] || { tail_logs; die "the broker did not start"; }
  sleep 0.5
  running_pid >/dev/null || { tail_logs; die "the broker exited right after starting"; }
  log "started (pid $pid); logs: $CONSOLE_LOG, $LOGS/server.log"
}

# --- wait ------------------------------------------------------------------------------------
cmd_wait() {
  [ -x "$PYTHON" ] || die "no Python at $PYTHON (set PYTHON to an interpreter with aiokafka)"
  # Pass our broker's PID so a JVM that dies during startup fails the wait at once.
  local pid_args=() pid
  if pid="$(running_pid)"; then
    pid_args=(--pid "$pid")
  elif [ -f "$PID_FILE" ]; then
    # `start` left a pid file (only `stop` removes it) but that JVM is gone: it crashed.
    tail_logs
    die "the broker started as pid $(cat "$PID_FILE") is no longer running"
  fi
  # No pid file at all: a broker we did not start may still serve the port, so just ask it.
  if ! "$PYTHON" "$HERE/wait_ready.py" --bootstrap "127.0.0.1:$KAFKA_PORT" \
      --timeout "$KAFKA_WAIT_TIMEOUT" "${pid_args[@]}"; then
    tail_logs
    die "broker on 127.0.0.1:$KAFKA_PORT is not ready"
  fi
}

# --- stop ------------------------------------------------------------------------------------
cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid (SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do  # 30 s: a clean shutdown flushes logs and closes the quorum
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    log "running (pid $pid, Kafka $(kafka_version), 127.0.0.1:$(running_port), data $DATA)"
    return 0
  fi
  log "stopped"
  return 3
}

cmd_reset() {
  cmd_stop
  rm -rf "$DATA"
  log "deleted $DATA (cluster id kept in $CLUSTER_ID_FILE; next start formats again)"
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  format) cmd_format ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
