#!/usr/bin/env bash
# Run one fuzz target for a bounded time: fuzz/run.sh TARGET SECONDS
# Needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz).
# New corpus entries go to a scratch directory so the committed seed corpus
# stays small; crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
target="${1:?usage: fuzz/run.sh TARGET SECONDS}"
secs="${2:?usage: fuzz/run.sh TARGET SECONDS}"
cd "$(dirname "$0")/.."
seeds="fuzz/corpus/$target"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo +nightly fuzz run "$target" "$work" "$seeds" -- \
  -max_total_time="$secs" -max_len=20000 -timeout=10 -print_final_stats=1
