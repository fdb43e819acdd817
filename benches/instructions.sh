#!/usr/bin/env bash
# Instructions per operation for each wire case, counted by callgrind: the
# difference between N and 0 repetitions, divided by N. Repeatable on a noisy
# machine, unlike wall-clock time.
#
#   bash benches/instructions.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
bin=$(cargo bench --locked -q -p tacit-benches --bench wire --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
count() {
  TACIT_BENCH_REPEAT="$1:$2" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-30s %14s\n' case instructions/op
declare -A per_op
for case in encode decode_envelope decode_envelope_and_payload frame_round_trip prost_decode_full prost_decode_envelope; do
  base=$(count "$case" 0)
  total=$(count "$case" "$n")
  per_op[$case]=$(( (total - base) / n ))
  printf '%-30s %14d\n' "$case" "${per_op[$case]}"
done
awk -v a="${per_op[decode_envelope]}" -v b="${per_op[prost_decode_full]}" \
  'BEGIN { printf "decode_envelope / prost_decode_full = %.3f\n", a / b }'
