#!/usr/bin/env bash
# Answer WebShop search queries with real Lucene: benchmarks/lucene_reference.py in its own Python 3.10 venv.
#
# Usage: scripts/lucene_reference.sh REQUEST.json   (the request format is in benchmarks/lucene_reference.py)
#        scripts/lucene_reference.sh --setup         (only build the venv)
#
# The venv ($LUCENE_VENV, default ~/.cache/prism-agents/lucene-venv) is built once with pyenv's Python 3.10 and
# holds pyserini 0.17.0 (installed --no-deps: only its Anserini 0.14.3 jar is used) and pyjnius. Needs Java 11+
# (OpenJDK 17 tested) on PATH or in $JAVA_HOME. This venv is the measuring instrument only; prism-agents never
# imports it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LUCENE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/prism-agents/lucene-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import jnius_config, pyserini" 2>/dev/null; then
  python310="$(pyenv prefix 3.10 2>/dev/null || true)/bin/python"
  [ -x "$python310" ] || { echo "error: no Python 3.10 from pyenv (pyenv install 3.10)" >&2; exit 1; }
  "$python310" -m venv "$venv"
  "$venv/bin/pip" install -q --no-deps pyserini==0.17.0
  "$venv/bin/pip" install -q pyjnius==1.7.0
fi
if [ -z "${JAVA_HOME:-}" ]; then
  java_bin="$(command -v java)" || { echo "error: no java on PATH (install OpenJDK 17)" >&2; exit 1; }
  export JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$java_bin")")")"
fi
[ "${1:-}" = "--setup" ] && exit 0
exec "$venv/bin/python" benchmarks/lucene_reference.py "$@"
