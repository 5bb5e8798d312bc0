#!/usr/bin/env bash
# Debian packages some tests use: espeak-ng (real speech for Whisper tests), chromium (playground tests),
# postgresql (the distributed-mode tests run a throwaway cluster), hey (benchmarks/api.py).
# Installs them when missing and we may (root); otherwise those tests skip with a reason.
set -u
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v chromium >/dev/null || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v hey >/dev/null || missing+=(hey)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
    || echo "warning: could not install ${missing[*]}; tests that need them will skip" >&2
else
  echo "note: ${missing[*]} not installed; tests that need them will skip" >&2
fi
exit 0
