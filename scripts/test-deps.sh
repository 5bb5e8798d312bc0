#!/usr/bin/env bash
# Everything `make test` needs, installed at once in parallel (each step is idempotent and also runs on
# its own when a test needs it): the project venv, Debian packages, the client SDKs, the vLLM and
# `transformers serve` venvs, and the conformance harness. On a fresh CI machine these installs are
# mostly downloads, so running them side by side saves several minutes of the 30-minute budget.
# The project venv, Debian packages and the harness are waited for; the client SDKs and the engine
# venvs keep installing (at a lower priority) while the first tests run: the fixtures that need them
# run the same scripts, which wait on the install's lock instead of repeating it.
# A step that fails is reported here and fails again, with its reason, in the test that needs it.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOGS="$ROOT/.work/logs"
mkdir -p "$LOGS"
cd "$ROOT"

step() {  # $1 = name, rest = command; runs in the background, logs to .work/logs/NAME.log
  local name="$1"; shift
  ( start=$(date +%s)
    if "$@" >"$LOGS/$name.log" 2>&1; then echo "test-deps: $name ready in $(( $(date +%s) - start )) s"
    else echo "test-deps: $name failed (rc $?, see .work/logs/$name.log)"; fi ) &
}

# Not waited for: each holds its script's lock from the start, so a test needing it waits there.
for name in clients vllm tfserve; do
  case $name in
    clients) cmd=(bash scripts/client-deps.sh) ;;
    *) cmd=(bash scripts/engine-deps.sh "$name") ;;
  esac
  ( nice -n 10 "${cmd[@]}" >"$LOGS/$name.log" 2>&1 </dev/null & )
done
sleep 1  # let them take their locks before any test can look

step venv make -s deps
step system bash scripts/system-deps.sh
if [ -f ../shared/conformance/run_all.sh ]; then  # SDKS=" ": install the SDKs, drive none
  step harness env SDKS=" " HARNESS_WORK="$ROOT/.work/harness" bash ../shared/conformance/run_all.sh http://127.0.0.1:9
fi
wait
