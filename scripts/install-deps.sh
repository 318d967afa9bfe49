#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine needs to build and test moe. Idempotent: quiet
# and fast when everything is present. Run as root (or with sudo available).
set -euo pipefail

# Build tools and the libraries the project links (see README "Dependencies").
PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  nlohmann-json3-dev   # JSON: config.json, safetensors headers, tokenizer.json
  libpcre2-dev         # Unicode-aware regexes for tokenizer pre-tokenizers
  libutf8proc-dev      # Unicode normalization (NFC/NFKC) for tokenizers
  libcli11-dev         # command-line parsing for the moe CLI
  libfmt-dev           # formatting of messages and reports
  libgtest-dev libgmock-dev  # unit and integration tests
  libbenchmark-dev     # kernel benchmarks
  liburing-dev         # io_uring expert reads (storage tiers)
  libzstd-dev          # optional per-expert compression in packs
  libxxhash-dev        # per-record checksums in packs
  clang libclang-rt-14-dev  # libFuzzer targets for the file parsers (scripts/fuzz.sh)
  strace               # tests/cli/test_open_once.cpp counts how often a command opens a pack
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
