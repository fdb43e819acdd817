#!/usr/bin/env bash
# Instructions per operation for each case of a benchmark, counted by
# callgrind: the difference between N and 0 repetitions, divided by N.
# Repeatable on a noisy machine, unlike wall-clock time.
#
#   bash benches/instructions.sh [BENCH] [N]
#
# BENCH is a bench target of tacit-benches: wire (the default), handshake,
# quic or trust. Its cases are the names its `--list` prints, without the
# group, run through TACIT_BENCH_REPEAT. N defaults to 20000 for wire, 1000
# for handshake and 200 for quic and trust (whose counts include both ends and
# vary a little with how packets happen to batch). CASES=REGEX counts only the cases it matches,
# e.g. CASES='rtt$' bash benches/instructions.sh quic.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=wire
if [[ $# -gt 0 && ! $1 =~ ^[0-9]+$ ]]; then
  bench=$1
  shift
fi
case $bench in
  handshake) default_n=1000 ;;
  quic | trust) default_n=200 ;;
  *) default_n=20000 ;;
esac
n=${1:-$default_n}
bin=$(cargo bench --locked -q -p tacit-benches --bench "$bench" --no-run --message-format=json 2>/dev/null |
  grep -F "\"kind\":[\"bench\"]" | grep -F "\"name\":\"$bench\"" |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1) || true
if [[ -z $bin ]]; then
  echo "no bench target $bench in tacit-benches" >&2
  exit 1
fi
count() {
  TACIT_BENCH_REPEAT="$1:$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
mapfile -t cases < <("$bin" --list | sed -n 's/^[^/]*\/\(.*\): benchmark$/\1/p' | grep -E "${CASES:-.}")
printf '%-30s %14s\n' case instructions/op
declare -A per_op
for case in "${cases[@]}"; do
  base=$(count "$case" 0)
  total=$(count "$case" "$n")
  per_op[$case]=$(( (total - base) / n ))
  printf '%-30s %14d\n' "$case" "${per_op[$case]}"
done
if [[ $bench == wire ]]; then
  awk -v a="${per_op[decode_envelope]}" -v b="${per_op[prost_decode_full]}" \
    'BEGIN { printf "decode_envelope / prost_decode_full = %.3f\n", a / b }'
fi
