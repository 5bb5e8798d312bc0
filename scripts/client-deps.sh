#!/usr/bin/env bash
# Installs the clients that tests/clients drives, pinned by tests/clients/pins/:
#   .work/clients/venv             google-genai (current), langchain-google-genai, litellm
#   .work/clients/venv-llamaindex  llama-index-llms-google-genai (it needs google-genai<3: a venv of its own)
#   .work/clients/node             ai + @ai-sdk/google (npm ci from the committed lock file)
# Idempotent: a stamp holds the pins' hash, so a second run returns at once. Exit 75 when a package
# registry cannot be reached (the suite then skips); any other failure is an install error.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PINS="$ROOT/tests/clients/pins"
WORK="${CLIENTS_WORK:-$ROOT/.work/clients}"
PYTHON="${CLIENTS_PYTHON:-python3}"
mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock 9  # two pytest runs at once install once

want="$(cat "$PINS"/clients.txt "$PINS"/llamaindex.txt "$PINS"/package.json "$PINS"/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$WORK/.installed" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

cannot() {  # the install cannot run here: say why, exit 75
  echo "client-deps: $1; the client suite's packages are not installed" >&2
  exit 75
}
command -v npm >/dev/null || cannot "npm is not installed"
"$PYTHON" -m venv --help >/dev/null 2>&1 || cannot "$PYTHON has no venv module"
"$PYTHON" -m pip download --no-deps -q -d "$WORK/.probe" filetype==1.2.0 >/dev/null 2>&1 || cannot "PyPI cannot be reached"
npm ping >/dev/null 2>&1 || cannot "the npm registry cannot be reached"

venv() {  # $1 = folder, $2 = pins file
  rm -rf "$1"
  "$PYTHON" -m venv "$1"
  "$1/bin/python" -m pip install -q --disable-pip-version-check -r "$2"
}
echo "client-deps: installing pinned clients into $WORK (a few minutes, once)" >&2
rm -f "$WORK/.installed"
venv "$WORK/venv" "$PINS/clients.txt"
venv "$WORK/venv-llamaindex" "$PINS/llamaindex.txt"
rm -rf "$WORK/node" && mkdir -p "$WORK/node"
cp "$PINS/package.json" "$PINS/package-lock.json" "$WORK/node/"
(cd "$WORK/node" && npm ci --silent --no-audit --no-fund)
echo "$want" > "$WORK/.installed"
