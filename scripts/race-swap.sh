#!/usr/bin/env bash
# The pack-swap race (docs/security.md): RUNS `moe run` of a pack while another process keeps
# replacing the pack's path with one of two packs of different models (ln + mv -f, as a
# deployment would). Each run must either complete or end in one clear error line; an abort,
# a signal or a crash is counted as a failure. Prints the counts; exits 1 on any failure.
# Usage: scripts/race-swap.sh [RUNS] [MOE_BINARY]     (default 2000, build/tools/moe)
#        env RACE_A, RACE_B: the two fixtures (default qwen3_moe, mixtral)
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-2000}"
MOE="${2:-build/tools/moe}"
DIR="$(mktemp -d)"
trap 'kill "$SWAPPER" 2>/dev/null; rm -rf "$DIR"' EXIT
"$MOE" convert "tests/fixtures/${RACE_A:-qwen3_moe}" "$DIR/a.moepack" --experts int4 --group-size 32 >/dev/null 2>&1
"$MOE" convert "tests/fixtures/${RACE_B:-mixtral}" "$DIR/b.moepack" --experts int4 --group-size 32 >/dev/null 2>&1
cp "$DIR/a.moepack" "$DIR/x.moepack"
(while :; do
   ln -f "$DIR/a.moepack" "$DIR/tmp" && mv -f "$DIR/tmp" "$DIR/x.moepack"
   ln -f "$DIR/b.moepack" "$DIR/tmp" && mv -f "$DIR/tmp" "$DIR/x.moepack"
 done) &
SWAPPER=$!
ok=0 clean_error=0 bad=0
for ((i = 0; i < RUNS; i++)); do
  "$MOE" run --model "$DIR/x.moepack" --prompt hi -n 2 --io pread --no-echo >/dev/null 2>"$DIR/err"
  code=$?
  lines=$(wc -l <"$DIR/err")
  if [ "$code" -eq 0 ]; then
    ok=$((ok + 1))
  elif [ "$code" -eq 1 ] && grep -q "^moe: error: " "$DIR/err" && [ "$lines" -le 2 ]; then
    [ "$clean_error" -eq 0 ] && echo "race-swap: first error (run $i): $(head -1 "$DIR/err")"
    clean_error=$((clean_error + 1))
  else
    bad=$((bad + 1))
    [ "$bad" -le 3 ] && { echo "race-swap: run $i exited $code:"; head -5 "$DIR/err"; }
  fi
done
echo "race-swap: $RUNS runs: $ok completed, $clean_error clean errors, $bad aborts or signals"
[ "$bad" -eq 0 ]
