#!/usr/bin/env bash
# Whole-process cost of two snowscope builds side by side: `rank DIR --no-cache` with each,
# rounds alternated so background load hits both alike; medians of wall time and peak RSS,
# and the median of the per-round time ratios (B / A).
#
#   benches/compare_binaries.sh BEFORE_BIN AFTER_BIN DIR... [ROUNDS=3 in the environment]
#
# BEFORE_BIN is typically a build of an earlier commit:
#   git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release)
set -euo pipefail
a=$1; b=$2; shift 2
rounds=${ROUNDS:-3}
measure() { # bin dir -> "seconds kilobytes"
    /usr/bin/time -f "%e %M" "$1" rank "$2" --no-cache --top 1 >/dev/null 2>/tmp/compare_binaries.err || true
    tail -1 /tmp/compare_binaries.err
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
printf "| folder | images | A s | B s | B/A (median of rounds) | A MB | B MB |\n|---|---|---|---|---|---|---|\n"
for dir in "$@"; do
    n=$(find "$dir" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) | wc -l)
    ta=(); tb=(); ma=(); mb=(); ratios=()
    for r in $(seq "$rounds"); do
        if (( r % 2 )); then read -r sa ka < <(measure "$a" "$dir"); read -r sb kb < <(measure "$b" "$dir")
        else read -r sb kb < <(measure "$b" "$dir"); read -r sa ka < <(measure "$a" "$dir"); fi
        ta+=("$sa"); tb+=("$sb"); ma+=("$ka"); mb+=("$kb")
        ratios+=("$(awk -v x="$sa" -v y="$sb" 'BEGIN {printf "%.3f", y / x}')")
    done
    printf "| %s | %s | %s | %s | %s | %s | %s |\n" "$(basename "$dir")" "$n" \
        "$(printf '%s\n' "${ta[@]}" | median)" "$(printf '%s\n' "${tb[@]}" | median)" \
        "$(printf '%s\n' "${ratios[@]}" | median)" \
        "$(printf '%s\n' "${ma[@]}" | median | awk '{printf "%.0f", $1/1024}')" \
        "$(printf '%s\n' "${mb[@]}" | median | awk '{printf "%.0f", $1/1024}')"
done
