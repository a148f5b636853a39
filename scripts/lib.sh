# Shared by scripts/bench and scripts/memory (sourced, not run): messages, a
# work folder, a PostgreSQL database made for the run, and `hulykvs serve`
# processes, all removed again on exit, also on Ctrl-C.
#
# The sourcing script sets, before sourcing:
#   SCRIPT  its name, for messages
#   BIN     the hulykvs binary to start
#   SECRET  the HS256 secret the servers verify tokens with
#   DB      the database make_db makes and cleanup drops
# and PGHOST, PGPORT, PGUSER for psql.

log() { echo "scripts/$SCRIPT: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# need TOOL…: dies naming the first tool missing from PATH.
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "needs $tool on PATH"
  done
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hulykvs-$SCRIPT.XXXXXX")
PIDS=()
DB_MADE=0
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$DB_MADE" = 1 ]; then
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
      log "could not drop database $DB"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_db: makes $DB afresh; cleanup drops it.
make_db() {
  PGOPTIONS='-c client_min_messages=warning' psql -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  DB_MADE=1
}

declare -A URL PID
# start_server NAME DB_CONNECTION: runs `hulykvs serve` on a free port and
# waits until /readyz answers; sets URL[NAME] and PID[NAME].
start_server() {
  local name=$1 db=$2 addr="" pid
  HULY_DB_CONNECTION=$db HULY_TOKEN_SECRET=$SECRET HULY_BIND_HOST=127.0.0.1 HULY_BIND_PORT=0 \
    RUST_LOG=warn,hulykvs::app=info "$BIN" serve 2>"$WORK/$name.log" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.* listening .*addr=\([0-9.:]*\).*/\1/p' "$WORK/$name.log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || die "the $name server exited: $(tail -n 3 "$WORK/$name.log")"
    sleep 0.1
  done
  [ -n "$addr" ] || die "the $name server did not start: $(tail -n 3 "$WORK/$name.log")"
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://$addr/readyz" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://$addr/readyz" || die "the $name server is not ready"
  URL[$name]="http://$addr"
  PID[$name]=$pid
}
