#!/usr/bin/env bash
# TRL's GRPOTrainer beside `prism bench grpo` on the same model shape (2
# layers, d_model 128, 4 heads, MLP 512, vocab 32), group size, prompt and
# completion lengths, in one run: best and median step times, the ratio, and
# Prism against the step's physical floor.
#
#   Benchmarks/compare-trl.sh [STEPS] [THREADS]     (defaults 10, 2; about 1 minute)
#
# Not part of CI. TRL's environment: Benchmarks/trl-env.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$("$root/Benchmarks/trl-env")"
echo "building Prism (release)..." >&2
swift build -c release --package-path "$root" >/dev/null
exec "$python" "$root/Benchmarks/compare_trl.py" --prism "$root/.build/release/prism" \
  --steps "${1:-10}" --threads "${2:-2}"
