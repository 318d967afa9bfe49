#!/usr/bin/env bash
# Behaviour check for refactors: runs the same commands with two moe binaries (e.g. one built from
# the previous commit in a git worktree) on the HF fixtures and int4 packs of them, and prints
# every output that differs. Tokens, logits (.npy bytes), perplexity, compare, tokenize, inspect,
# bench --json key sets and help text must match; speed figures are not compared.
# Usage: scripts/compare-binaries.sh OLD_MOE NEW_MOE
set -uo pipefail
cd "$(dirname "$0")/.."
OLD="$1" NEW="$2"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
F=tests/fixtures
TEXT="$WORK/text.txt"
cat docs/architecture.md > "$TEXT"
keys() { python3 -c "import json,sys; j=json.load(sys.stdin); r=j['runs'][0] if 'runs' in j else j; print(sorted(j.keys()), sorted(r.keys()), [x.get('prefetch') for x in j.get('runs', [j])])"; }
outputs() {  # BIN DIR
  local B=$1 O=$2
  mkdir -p "$O"
  "$B" synth --shape tiny -o "$WORK/synth.moepack" --seed 3 >/dev/null 2>&1
  for fx in mixtral qwen3_moe olmoe qwen2_moe; do
    local P="$WORK/$fx.moepack"
    [ -f "$P" ] || "$B" convert "$F/$fx" "$P" --experts int4 --group-size 32 >/dev/null 2>&1
    "$B" run --model "$F/$fx" --prompt "def main(): print" -n 12 --temp 0 --no-echo >"$O/run_$fx" 2>/dev/null
    "$B" run --model "$P" --prompt "def main(): print" -n 12 --temp 0.9 --seed 2 --ram-budget 40% --io pread --no-echo >"$O/runpack_$fx" 2>/dev/null
    "$B" bench --model "$F/$fx" --prompt-len 8 --gen-len 4 --json 2>/dev/null | keys >"$O/bench_$fx"
    "$B" bench --model "$P" --prompt-len 8 --gen-len 4 --ram-budget 40% --prefetch off,gate --json 2>/dev/null | keys >"$O/benchpack_$fx"
    "$B" logits --model "$P" --tokens 1,2,3 --out "$O/logits_$fx.npy" 2>/dev/null
    "$B" perplexity --model "$P" --file "$TEXT" --context 64 2>/dev/null | python3 -c "import json,sys; j=json.load(sys.stdin); print(j['perplexity'], j['unigram_perplexity'])" >"$O/ppl_$fx"
  done
  "$B" bench --model "$WORK/synth.moepack" --prompt-len 8 --gen-len 4 --routing zipf:1 --prefetch oracle,gate --json 2>/dev/null | keys >"$O/bench_oracle"
  "$B" compare --model "$WORK/qwen3_moe.moepack" --ref "$F/qwen3_moe" --file "$TEXT" --json >"$O/compare" 2>/dev/null
  "$B" tokenize --model "$WORK/qwen3_moe.moepack" --text "hello world" >"$O/tokenize" 2>&1
  "$B" inspect --model "$WORK/qwen3_moe.moepack" --json >"$O/inspect" 2>&1
  "$B" run --model models/tiny-moe --prompt-file models/tiny-moe/samples/demo_chat.prompt.txt -n 48 --temp 0 >"$O/demo" 2>/dev/null
}
outputs "$OLD" "$WORK/old"
rm -f "$WORK"/*.moepack
outputs "$NEW" "$WORK/new"
diffs=0
for f in "$WORK/old"/*; do
  n="$WORK/new/$(basename "$f")"
  if ! cmp -s "$f" "$n"; then
    diffs=$((diffs + 1))
    echo "== differs: $(basename "$f")"
    case "$f" in *.npy) ;; *) diff "$f" "$n" | head -6 ;; esac
  fi
done
echo "compare-binaries: $(ls "$WORK/old" | wc -l) outputs, $diffs differ"
[ "$diffs" -eq 0 ]
