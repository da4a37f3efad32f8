#!/usr/bin/env bash
# Prism (SGPO, torch backend) beside TRL's GRPOTrainer on SmolLM2-135M-Instruct,
# same model, data, group size, lengths, sampling and optimizer, in one run:
# tokens/s of generation and of training, step time and peak memory.
#
#   Benchmarks/smollm2-vs-trl.sh [STEPS]        (default 10; about 10 minutes)
#
# Not part of CI. TRL's environment: Benchmarks/trl-env.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-10}"
python="$("$root/Benchmarks/trl-env")"
echo "building Prism (release)..." >&2
swift build -c release --package-path "$root" >/dev/null
exec "$python" "$root/Benchmarks/smollm2_vs_trl.py" --prism "$root/.build/release/prism" \
  --config "$root/Examples/SmolLM2/smollm2-sgpo.yaml" --steps "$steps"
