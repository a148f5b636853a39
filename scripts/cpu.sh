# CPU accounting for the benchmarks (issue #29), sourced after scripts/lib.sh:
# what a process, the whole PostgreSQL cluster and an nginx floor cost in
# processor time, read from /proc in clock ticks.

TICK_US=$(awk -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1e6 / hz }')

# ticks PID…: user + system clock ticks the processes have used, summed. The
# command name (field 2) may hold spaces, so fields count from its ')'.
ticks() {
  local pid
  for pid in "$@"; do
    sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null || true
  done | awk '{ s += $12 + $13 } END { print s + 0 }'
}

# PG_MASTER: the postmaster of the PostgreSQL the benchmarks use.
pg_master() {
  local dir
  dir=$(psql -X -Atq -d postgres -c 'SHOW data_directory') ||
    die "cannot ask PostgreSQL for its data directory (the CPU figures need a superuser: PGUSER)"
  [ -r "$dir/postmaster.pid" ] ||
    die "cannot read $dir/postmaster.pid: the CPU figures need to run beside PostgreSQL, as root or its owner"
  head -n 1 "$dir/postmaster.pid"
}

# pg_ticks: every tick of the cluster: the postmaster, each live process
# under it, and (cutime, cstime) what its exited children used, so the
# backends of pgbench's connections count after pgbench has gone.
pg_ticks() {
  local kids reaped
  kids=$(ps -o pid= --ppid "$PG_MASTER" | tr '\n' ' ')
  reaped=$(sed 's/.*) //' "/proc/$PG_MASTER/stat" | awk '{ print $14 + $15 }')
  # shellcheck disable=SC2086 # one pid per word
  awk -v a="$(ticks "$PG_MASTER" $kids)" -v b="$reaped" 'BEGIN { print a + b }'
}

# per_request TICKS REQUESTS: microseconds of CPU per request.
per_request() {
  awk -v t="$1" -v n="$2" -v us="$TICK_US" 'BEGIN { printf "%.1f", (n > 0 ? t * us / n : 0) }'
}

# start_nginx: Debian's nginx as the HTTP floor: one worker, `return 200
# "ok"`, no access log, on a free port; sets NGINX_URL and NGINX_PIDS (the
# master and its worker).
start_nginx() {
  local port pid
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$WORK/nginx/logs"
  cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "ok"; }
  }
}
CONF
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" \
    2>>"$WORK/nginx/logs/start.log" &
  pid=$!
  PIDS+=("$pid")
  NGINX_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do
    curl -fsS -o /dev/null "$NGINX_URL/" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "$NGINX_URL/" ||
    die "nginx did not start: $(tail -n 3 "$WORK/nginx/logs/start.log" "$WORK/nginx/logs/error.log" 2>/dev/null)"
  NGINX_PIDS="$pid $(ps -o pid= --ppid "$pid" | tr '\n' ' ')"
}

# ensure_tools: installs wrk and nginx from Debian's packages where they are
# missing and apt can (as root); otherwise `need` says what to install.
ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || missing+=(nginx-light)
  if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
      die "apt-get install ${missing[*]} failed: $(tail -n 3 "$WORK/apt.log")"
  fi
  need wrk nginx
}
