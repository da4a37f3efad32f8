#!/usr/bin/env bash
# Two revisions of the transformer kernels (Plugins/Transformer/Kernels)
# side by side, each built into a shared library with clang -O2 (as
# SwiftPM builds them; $CC if set, cc without clang): their
# training passes alternated in one process (Benchmarks/kernels/ab.c; the
# reference shape), and with --hash whether they compute the same bits
# (Benchmarks/kernels/hash.c: log-probs, gradients and decoding logits on six
# shapes, 1 and 2 threads, widest kernels / AVX2 forced / portable model).
#
#   Benchmarks/kernel-ab.sh [--hash] [--gemm] REV_A REV_B [THREADS] [PASSES]   (defaults 2, 200)
#
# REV is a git revision, or "work" for the working tree. On a VM whose speed
# moves between seconds, only alternated passes compare two builds; at one
# thread (THREADS 1) the figures move least. With --gemm, the GEMM alone on
# the model's shapes instead of the pass (Benchmarks/kernels/gemm_ab.c;
# PASSES is then the rounds, default 15). Not part of CI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  echo "usage: Benchmarks/kernel-ab.sh [--hash] [--gemm] REV_A REV_B [THREADS] [PASSES]" >&2
  exit 2
}
hash=0 gemm=0
while [ $# -gt 0 ]; do
  case "$1" in
  --hash) hash=1 ;;
  --gemm) gemm=1 ;;
  -*) usage ;;
  *) break ;;
  esac
  shift
done
[ $# -ge 2 ] || usage
rev_a="$1" rev_b="$2" threads="${3:-2}" passes="${4:-}"
# The product's compiler: gcc -O2 builds of the same kernels ran the pass
# 17% slower here (51.4 against 44.1 ms, one thread), so an A/B with gcc
# judges different code.
cc="${CC:-$(command -v clang || echo cc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Builds revision $1's kernels into $work/$2.so.
build() {
  local rev="$1" name="$2" src="$work/$2"
  mkdir -p "$src"
  if [ "$rev" = work ]; then
    cp -R "$root/Plugins/Transformer/Kernels/." "$src/"
  else
    git -C "$root" rev-parse --verify --quiet "$rev^{commit}" >/dev/null \
      || { echo "kernel-ab: no such revision: $rev" >&2; exit 2; }
    git -C "$root" archive "$rev" Plugins/Transformer/Kernels | tar -x -C "$src" --strip-components=3
  fi
  "$cc" -O2 -shared -fPIC -D_GNU_SOURCE -pthread -I"$src/include" -I"$src" "$src"/*.c -lm -o "$work/$name.so"
}

echo "building $rev_a and $rev_b..." >&2
build "$rev_a" a
build "$rev_b" b
if [ "$hash" = 1 ]; then
  "$cc" -O2 -I"$work/a/include" "$root/Benchmarks/kernels/hash.c" -ldl -o "$work/hash"
  "$work/hash" "$work/a.so" >"$work/a.hash"
  "$work/hash" "$work/b.so" >"$work/b.hash"
  echo "A ($rev_a):"; sed 's/^/  /' "$work/a.hash"
  echo "B ($rev_b):"; sed 's/^/  /' "$work/b.hash"
  if cmp -s "$work/a.hash" "$work/b.hash"; then echo "same bits"; else echo "DIFFERENT bits"; fi
fi
if [ "$gemm" = 1 ]; then
  "$cc" -O2 -I"$work/a/include" "$root/Benchmarks/kernels/gemm_ab.c" -ldl -o "$work/gemm_ab"
  "$work/gemm_ab" "$work/a.so" "$work/b.so" "$threads" "${passes:-15}" | sed "s#$work/a.so#$rev_a#; s#$work/b.so#$rev_b#"
else
  "$cc" -O2 -I"$work/a/include" "$root/Benchmarks/kernels/ab.c" -ldl -o "$work/ab"
  "$work/ab" "$work/a.so" "$work/b.so" "$threads" "${passes:-200}" | sed "s#$work/a.so#$rev_a#; s#$work/b.so#$rev_b#"
fi
