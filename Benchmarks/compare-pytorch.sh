#!/usr/bin/env bash
# Prism against PyTorch (CPU build) on the reference transformer shape, side
# by side in one run: forward+backward tokens/s, KV-cache generation new
# tokens/s, GEMM GFLOP/s on the model's shapes, and the Prism/PyTorch ratios.
#
#   Benchmarks/compare-pytorch.sh [THREADS] [REPEATS]   (defaults 2 and 20)
#
# Both sides report the best of REPEATS timings of each measurement: on a
# shared VM whose speed moves by a third between minutes, five were too few
# to find the quiet moments of either.
#
# Not part of CI. PyTorch from scripts/python-env (torch 2.13.0+cpu, pinned).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads="${1:-2}"
repeats="${2:-20}"
python="$("$root/scripts/python-env")"  # torch 2.13.0+cpu, pinned
echo "building Prism (release)..." >&2
swift build -c release --package-path "$root" >/dev/null
torch_json="$("$python" "$root/Benchmarks/pytorch_reference.py" "$threads" "$repeats" 2>/dev/null)"
prism_json="$("$root/.build/release/prism" bench transformer --threads "$threads" --repeats "$repeats" --json)"
python3 - "$torch_json" "$prism_json" <<'PY'
import json, sys
t, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
peak = p["fma_peak_gflops"]
print(f"Reference shape: 2 layers, d_model 128, 4 heads, MLP 512, vocab 32; batch 64, prompt 16 + 16 new")
print(f"threads {p['threads']}, PyTorch {t['torch']}, Prism kernels {'AVX2+FMA' if p['avx2_fma'] else 'portable'}, "
      f"measured FMA peak {peak:.1f} GFLOP/s")
print(f"{'':32}{'Prism':>12}{'PyTorch':>12}{'ratio':>9}   target")
def row(name, a, b, target):
    print(f"{name:32}{a:12.0f}{b:12.0f}{a / b:9.2f}   {target}")
row("forward+backward tokens/s", p["fwd_bwd_tokens_per_s"], t["fwd_bwd_tokens_per_s"], ">= 1.5x")
row("generation new tokens/s", p["generation_tokens_per_s"], t["generation_tokens_per_s"], ">= 2x")
print(f"{'GEMM (M x K x N), GFLOP/s':32}{'':33}Prism 1 thread, {p['threads']}/1 scaling")
for name, g in p["gemm_gflops"].items():
    one = p["gemm_gflops_1_thread"][name]
    print(f"  {name:30}{g:12.1f}{t['gemm_gflops'][name]:12.1f}{g / t['gemm_gflops'][name]:9.2f}"
          f"   {100 * g / peak:3.0f}% of peak (>= 80%)  {one:6.1f}  {g / one:4.2f}x")
PY
