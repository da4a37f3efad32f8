#!/usr/bin/env bash
# Whether this machine is quiet enough to measure on: about twice a second
# the FMA peak at one and two threads beside one of the model's GEMMs as a
# share of it, on the pool's two threads and on one thread pinned to each
# of the first two CPUs at once (Benchmarks/kernels/watch.c), for SECONDS
# (default 30). Run it before compare-pytorch.sh or kernel-ab.sh: on this
# project's VMs the GEMM on one vCPU or on both loses nearly half its speed
# for seconds at a time while the FMA loop keeps its own (lines marked "one
# slow", "both slow"). Last on each line, a cache line's round trip
# between the two CPUs: ~410 ns instead of ~100 ("apart") when the host has
# put the vCPUs on two dies, which the smallest two-thread products and
# decoding feel. Builds the working tree's kernels as kernel-ab.sh does
# (clang -O2). Not part of CI.
#
#   Benchmarks/machine-watch.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-30}"
cc="${CC:-$(command -v clang || echo cc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="$root/Plugins/Transformer/Kernels"
"$cc" -O2 -shared -fPIC -D_GNU_SOURCE -pthread -I"$src/include" -I"$src" "$src"/*.c -lm -o "$work/kernels.so"
"$cc" -O2 -I"$src/include" "$root/Benchmarks/kernels/watch.c" -ldl -pthread -o "$work/watch"
"$work/watch" "$work/kernels.so" "$seconds"
