#!/usr/bin/env bash
# Prism (SGPO, torch backend) beside TRL's GRPOTrainer on SmolLM2-135M-Instruct,
# same model, data, group size, lengths, sampling and optimizer, in one run:
# tokens/s of generation and of training, step time and peak memory.
#
#   Benchmarks/smollm2-vs-trl.sh [STEPS]        (default 10; about 10 minutes)
#
# Not part of CI. Uses scripts/python-env's environment and adds TRL
# (Benchmarks/trl-requirements.txt) in .build-python/trl the first time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-10}"
python="$("$root/scripts/python-env")"
base="$(dirname "$(dirname "$python")")"
trl="$root/.build-python/trl"
requirements="$root/Benchmarks/trl-requirements.txt"
if [ ! -x "$trl/bin/python" ] || ! cmp -s "$requirements" "$trl/.requirements" 2>/dev/null; then
  echo "installing TRL into $trl ..." >&2
  rm -rf "$trl"
  python3 -m venv "$trl"
  # The overlay sees the base environment's packages (torch is not installed twice).
  "$python" -c "import site; print(site.getsitepackages()[0])" \
    > "$("$trl/bin/python" -c "import site; print(site.getsitepackages()[0])")/prism-base.pth"
  "$trl/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$trl/.requirements"
fi
echo "building Prism (release)..." >&2
swift build -c release --package-path "$root" >/dev/null
exec "$trl/bin/python" "$root/Benchmarks/smollm2_vs_trl.py" --prism "$root/.build/release/prism" \
  --config "$root/Examples/SmolLM2/smollm2-sgpo.yaml" --steps "$steps"
