# Helpers shared by the daemon system tests (sourced; bash). The caller keeps
# the PIDs array of what it started and the passed/failed counters.

ok()   { passed=$((passed + 1)); echo "ok   - $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

# log_has FILE EVENT [PATTERN]: a log line with event=EVENT (and PATTERN) exists.
log_has() { grep -E "event=$2( |\$)" "$1" | grep -qE -- "${3:-.}"; }

# alive PID: the process runs (a zombie, dead but not yet reaped, does not count).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

forget_pid() {
    local gone=$1 keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$gone" ] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

not() { ! "$@"; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s; fails after SECONDS.
wait_until() {
    local deadline=$(( $(date +%s%N) + ${1%.*} * 1000000000 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# stop_process PID SIGNAL [SECONDS]: sends SIGNAL, waits (15 s by default, then
# SIGKILL) and sets rc to the exit status (128 + N for a signal).
stop_process() {
    local pid=$1 sig=$2 patience=${3:-15}
    kill "-$sig" "$pid" 2>/dev/null || true
    if ! wait_until "$patience" not alive "$pid"; then
        echo "# process $pid ignored SIG$sig for $patience s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    forget_pid "$pid"
}

daemon_up() { [ "$(started_count "$1")" -gt "$2" ] && [ -S "$3" ]; }
started_count() { if [ -f "$1" ]; then grep -cE 'event=(sender|receiver)_started' "$1" || true; else echo 0; fi; }
# start_daemon NAME BINARY CONFIG SOCKET: runs BINARY with stderr appended to NAME.log
# and waits for its *_started line and control socket. Sets LAST_PID.
start_daemon() {
    local name=$1 binary=$2 config=$3 socket=$4
    local before
    before=$(started_count "$name.log")
    "$binary" --config "$config" 2>>"$name.log" >>"$name.stdout" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    if ! wait_until 10 daemon_up "$name.log" "$before" "$socket"; then
        echo "${0##*/}: $name did not start (or create $socket)" >&2
        tail -n 20 "$name.log" >&2
        return 1
    fi
}
