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
  libcpp-httplib-dev   # HTTP server of moe serve
  strace               # tests/cli/test_open_once.cpp counts how often a command opens a pack
  python3-pip          # the Python packages below
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python packages for the tests that drive `moe serve` with the real openai client (tests/openai,
# examples/agent.py), pinned in tests/openai/requirements.txt, for the `python3` on PATH (the one
# ctest runs). Nothing is run when every pin is already installed at its version. Debian's own
# Python is "externally managed" (PEP 668): pip then needs --break-system-packages.
REQS="$(dirname "$0")/../tests/openai/requirements.txt"
if [ -f "$REQS" ] && ! python3 - "$REQS" <<'PY'
import sys
from importlib import metadata
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, version = line.partition("==")
    try:
        if metadata.version(name.strip()) != version.strip():
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
PY
then
  echo "install-deps: pip installing $(tr '\n' ' ' < "$REQS")"
  PIP_FLAGS=(-q --disable-pip-version-check --no-input --root-user-action=ignore)
  if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    PIP_FLAGS+=(--break-system-packages)
  fi
  python3 -m pip install "${PIP_FLAGS[@]}" -r "$REQS"
fi
