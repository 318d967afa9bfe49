# The start shared by peer_bench.sh and peer_offload.sh, sourced after `set -euo pipefail`:
#   peer_start "$0" "$@"   the script's header comment as usage unless there are two arguments;
#                          sets PACK and GGUF (absolute paths) and MOE (default: this
#                          repository's build/tools/moe)
#   peer_check BIN...      both model files exist and every BIN is an executable
peer_name=$(basename "$0" .sh)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

peer_start() {
  local script=$1
  shift
  if [[ $# -ne 2 || $1 == -h || $1 == --help ]]; then
    sed -n '2,/^set -euo/p' "$script" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
  fi
  PACK=$(realpath -m -- "$1")
  GGUF=$(realpath -m -- "$2")
  MOE=${MOE:-$repo/build/tools/moe}
}

peer_check() {
  local f b
  for f in "$PACK" "$GGUF"; do [[ -f $f ]] || { echo "$peer_name: no file $f" >&2; exit 1; }; done
  for b in "$@"; do [[ -x $b ]] || { echo "$peer_name: $b is not an executable" >&2; exit 1; }; done
}
