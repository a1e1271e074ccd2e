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

# expect WHAT FILE CMD...: like check, and shows FILE (the command's output) on failure.
expect() {
    local what=$1 file=$2; shift 2
    if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; sed 's/^/#     /' "$file" | head -n 12; fi
}

# dump_logs FILE...: the last 30 lines of each non-empty FILE (paths shown relative to $WORK).
dump_logs() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        echo "---- last lines of ${f#"$WORK"/} ----"
        tail -n 30 "$f"
    done
}

# stop_all: SIGCONT then SIGTERM to every process in PIDS (one stopped with
# SIGSTOP must run to act on it), 5 s of grace, SIGKILL, then reaps them all.
stop_all() {
    local pid running
    for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 50); do
        running=0
        for pid in "${PIDS[@]}"; do alive "$pid" && running=1; done
        [ "$running" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}

# finish_work NAME RC LOG...: how every daemon test's EXIT trap ends, after its
# own clean-up: a script that stopped before its summary (FINISHED unset) says
# so and shows the last lines of LOGs; then the work directory goes (kept with
# SLUICE_KEEP_WORK=1) and the script exits with RC.
finish_work() {
    local name=$1 rc=$2
    shift 2
    if [ "$rc" -ne 0 ] && [ -z "${FINISHED:-}" ]; then
        echo "$name: aborted (exit $rc) after $passed passed, $failed failed"
        dump_logs "$@"
    fi
    cd /
    if [ -n "${SLUICE_KEEP_WORK:-}" ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}

# remove_accounts NAME: deletes the users in USERS_MADE, then the groups in GROUPS_MADE.
remove_accounts() {
    local u g
    for u in "${USERS_MADE[@]}"; do userdel "$u" 2>/dev/null || echo "$1: could not remove user $u" >&2; done
    for g in "${GROUPS_MADE[@]}"; do groupdel "$g" 2>/dev/null || echo "$1: could not remove group $g" >&2; done
}

# The import side, for scripts that set SLUICE, RSOCK (the receiver's socket), PY
# (python3) and run the receiver in r/ with its log in r.log:
# state_of ID: the import's state as `sluice show` says it (empty if unknown).
state_of() {
    "$SLUICE" show "$1" --json --socket "$RSOCK" 2>/dev/null |
        "$PY" -I -c 'import json, sys; print(json.load(sys.stdin)["state"])' 2>/dev/null || true
}
state_in() { local s; s=$(state_of "$1"); shift; [ -n "$s" ] && [[ " $* " == *" $s "* ]]; }
# wait_state ID SECONDS STATE...: until `sluice show ID` reports one of STATEs.
wait_state() {
    local id=$1 secs=$2; shift 2
    if ! wait_until "$secs" state_in "$id" "$@"; then
        echo "# bundle ${id:0:12} did not reach $* within $secs s (now: $(state_of "$id"))"
        tail -n 15 r.log | sed 's/^/#   r.log: /'
        return 1
    fi
}
current_of() { readlink "r/releases/$1/current" 2>/dev/null || true; }
