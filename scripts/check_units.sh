#!/usr/bin/env bash
# Checks the systemd units with systemd-analyze, after `cargo build`:
#
#   scripts/check_units.sh [BINARY]      # BINARY defaults to target/debug/jobq
#
# Copies systemd/jobq.service into a temporary directory, once alone (with
# systemd/jobq.socket beside it) and once with systemd/jobq-root.conf as
# jobq.service.d/root.conf, with ExecStart's
# /usr/local/bin/jobq pointed at BINARY (verify checks that the command
# exists and is executable). Then, for both services (the socket unit is
# verified only):
#   - `systemd-analyze verify`: any output (warning or error) fails;
#   - `systemd-analyze security --offline=yes`: prints the exposure score and
#     fails above the ceiling below (a hardening directive lost by accident).
# Needs systemd-analyze (Debian: apt-get install -y systemd); does not need
# systemd running as PID 1, nor root.
set -euo pipefail

# Exposure ceilings, in tenths (systemd-analyze --threshold); the scores were
# 1.5 (unit) and 3.0 (unit + root drop-in) with systemd 252.
MAX_UNIT=20
MAX_ROOT=35

repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "check_units: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null ||
    die "systemd-analyze not found (Debian: apt-get install -y systemd)"

bin=${1:-$repo/target/debug/jobq}
[[ $bin = /* ]] || bin=$PWD/$bin
[[ -f $bin && -x $bin ]] || die "$bin: not an executable file (run cargo build first)"
bin=$(realpath -- "$bin")
# ExecStart= splits on whitespace and interprets quotes, backslashes and
# % specifiers; rather than quote, refuse the odd path (escape % only).
odd='[[:space:]"'\''\\]'
if [[ $bin =~ $odd ]]; then die "$bin: path with whitespace, quotes or backslashes"; fi
bin_unit=${bin//%/%%}

# Unit search path: only the distribution's unit directory, where the units
# our unit depends on by default (sysinit.target, basic.target,
# shutdown.target) and After=network.target live. Leaving out /etc and /run
# keeps a host's own jobq.service.d drop-ins (an installed jobq) out of the
# check. The directory of the unit given on the command line is searched
# first anyway.
vendor=
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -e $d/sysinit.target ]]; then vendor=$d; break; fi
done
[[ -n $vendor ]] || die "no systemd unit directory with sysinit.target (apt-get install -y systemd)"
export SYSTEMD_UNIT_PATH=$vendor

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Copies unit file $1 to $2 with every Exec*= command /usr/local/bin/jobq
# replaced by the binary; prints how many lines it rewrote.
rewrite() {
    local line n=0
    local re='^(Exec[A-Za-z]*=[-@:+!|]*)/usr/local/bin/jobq([[:space:]].*)?$'
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ $re ]]; then
            line=${BASH_REMATCH[1]}$bin_unit${BASH_REMATCH[2]}
            n=$((n + 1))
        fi
        printf '%s\n' "$line"
    done <"$1" >"$2"
    echo "$n"
}

mkdir -p "$tmp/unit" "$tmp/root/jobq.service.d"
n=$(rewrite "$repo/systemd/jobq.service" "$tmp/unit/jobq.service")
[[ $n -ge 1 ]] || die "systemd/jobq.service: no ExecStart=/usr/local/bin/jobq line to point at $bin"
cp "$tmp/unit/jobq.service" "$tmp/root/jobq.service"
# The socket unit activates the service of its name, beside it.
cp "$repo/systemd/jobq.socket" "$tmp/unit/jobq.socket"
rewrite "$repo/systemd/jobq-root.conf" "$tmp/root/jobq.service.d/root.conf" >/dev/null

failed=0

# verify NAME UNIT: fails on a non-zero exit or on any output at all (verify
# exits 0 on unknown keys and bad values; it only prints them).
verify() {
    local out rc=0
    out=$(cd "$tmp" && systemd-analyze verify --man=no --recursive-errors=yes "$2" 2>&1) || rc=$?
    if [[ $rc -ne 0 || -n $out ]]; then
        echo "FAIL verify $1 (exit $rc):"
        printf '%s\n' "$out" | sed "s|$tmp/||g; s/^/    /"
        failed=1
    else
        echo "ok   verify $1"
    fi
}

# security NAME UNIT CEILING [PATTERN]: prints the overall exposure line;
# fails above CEILING, or when PATTERN (a line the analysis must contain,
# proving the drop-in was read) is missing.
security() {
    local out rc=0
    out=$(cd "$tmp" && systemd-analyze security --offline=yes --threshold="$3" "$2" 2>&1) || rc=$?
    local score
    score=$(printf '%s\n' "$out" | grep 'Overall exposure level' || true)
    if [[ $rc -ne 0 || -z $score ]]; then
        echo "FAIL security $1 (exit $rc, ceiling $(($3 / 10)).$(($3 % 10))): ${score:-no score}"
        [[ -n $score ]] || printf '%s\n' "$out" | sed 's/^/    /'
        failed=1
    elif [[ -n ${4:-} ]] && ! printf '%s\n' "$out" | grep -q -- "$4"; then
        echo "FAIL security $1: expected '$4' in the analysis (drop-in not applied?)"
        failed=1
    else
        echo "ok   security $1: ${score#→ }"
    fi
}

verify jobq.service "$tmp/unit/jobq.service"
verify "jobq.service + root.conf" "$tmp/root/jobq.service"
verify jobq.socket "$tmp/unit/jobq.socket"
security jobq.service "$tmp/unit/jobq.service" "$MAX_UNIT" 'transient non-root user'
security "jobq.service + root.conf" "$tmp/root/jobq.service" "$MAX_ROOT" 'Service runs as root user'

if [[ $failed -ne 0 ]]; then
    echo "check_units: failed" >&2
    exit 1
fi
