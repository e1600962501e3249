# shellcheck shell=bash
# Instructions per query under valgrind's callgrind, shared by scripts/bench-dns and
# scripts/bench-dnssec (sourced, not run). Callgrind counts the instructions a process executes
# in user space, exactly and whatever else runs on the machine, so two servers (or two builds)
# can be compared on a busy machine where CPU time is noise. The kernel's work, the system calls
# included, is not in the count.
#
# A server is started under "${CG_WRAP[@]}" (set by cg_wrap), which writes one file per thread
# and per dump into the given directory; cg_instructions then zeroes its counters, sends a query
# file once and reads what was counted.

# CG_WORKER_FN, when set, names the function only the measured thread runs (acme-delegate's
# UDP worker loop): the threads whose dump names it are counted, and not the busiest thread. The
# UDP worker is not always the busiest: a signed zone is also written to the store after the
# server is ready, by other threads, for longer than a pass of queries takes under valgrind.
CG_WORKER_FN=${CG_WORKER_FN:-}

# cg_wrap DIR: sets CG_WRAP, the command prefix that runs a server under callgrind with its
# output files in DIR. Threads are counted apart: acme-delegate's UDP worker is then measured
# alone, without the timers and the change-feed polling of its other threads, whose work grows
# with the time a run takes rather than with the queries.
cg_wrap() {
    CG_DIR=$1
    # shellcheck disable=SC2034 # read by the script that sources this file
    CG_WRAP=(valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$CG_DIR/callgrind.%p")
}

# cg_instructions NAME PORT ZONE QUERIES CPU OUTSTANDING "PIDS" [DNSPERF FLAGS...]: one pass of
# dnsperf over the file QUERIES (from CPU, OUTSTANDING queries at a time) against the server
# processes PIDS, which answer for ZONE on 127.0.0.1:PORT and run under CG_WRAP. Prints
# "NAME thread answered lost total": the instructions of the measured thread (the one that runs
# CG_WORKER_FN; unset, the busiest), the queries answered and lost, and the instructions of
# every thread of every process. Each thread's count goes to stderr.
# dnsperf's output is left in CG_DIR/dnsperf-NAME-callgrind.txt.
cg_instructions() {
    local name=$1 port=$2 zone=$3 queries=$4 cpu=$5 outstanding=$6 pids=$7
    shift 7
    local out="$CG_DIR/dnsperf-$name-callgrind.txt" total=0 busiest=0 worker=0 pid dump part n z
    # A process blocked in a system call takes the command when it next wakes: queries wake it
    # (they are answered before the counters are zeroed, so they are not counted).
    local zeroing=()
    for pid in $pids; do
        callgrind_control -z "$pid" >/dev/null &
        zeroing+=($!)
    done
    while for z in "${zeroing[@]}"; do kill -0 "$z" 2>/dev/null && break; done; do
        dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$zone" SOA >/dev/null 2>&1 || true
    done
    wait "${zeroing[@]}" || true
    timeout 3600 taskset -c "$cpu" dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -n 1 \
        -c 1 -q "$outstanding" -t 30 "$@" >"$out" 2>&1 ||
        { echo "dnsperf against $name failed:" >&2; cat "$out" >&2; return 1; }
    for pid in $pids; do
        callgrind_control -d "$pid" >/dev/null
        # The dump just written has the highest part number, a file per thread.
        # shellcheck disable=SC2012 # the names are callgrind's own: PID, part, thread
        part=$(ls "$CG_DIR/callgrind.$pid".* 2>/dev/null | sed -n "s|^$CG_DIR/callgrind\.$pid\.\([0-9]*\)-.*|\1|p" | sort -n | tail -1)
        [ -n "$part" ] || { echo "no callgrind dump of $name process $pid" >&2; return 1; }
        for dump in "$CG_DIR/callgrind.$pid.$part"-*; do
            n=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
            echo "$name: ${dump##*/}: $n instructions" >&2
            total=$((total + n))
            [ "$n" -gt "$busiest" ] && busiest=$n
            if [ -n "$CG_WORKER_FN" ] && grep -qF "$CG_WORKER_FN" "$dump"; then worker=$((worker + n)); fi
        done
    done
    if [ -n "$CG_WORKER_FN" ]; then
        [ "$worker" -gt 0 ] || { echo "no thread of $name ran $CG_WORKER_FN" >&2; return 1; }
        busiest=$worker
    fi
    local answered lost
    answered=$(awk '/Queries completed:/ { print $3 }' "$out")
    lost=$(awk '/Queries lost:/ { print $3 }' "$out")
    echo "$name $busiest $answered $lost $total"
}
