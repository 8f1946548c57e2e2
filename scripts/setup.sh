#!/usr/bin/env bash
# Set up alignstack in ./.venv on a fresh machine (CPU). `--dev` adds test/benchmark dependencies and,
# when run as root, Debian's chromium/chromedriver (browser tests) and postgresql (storage tests).
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch 2.13.0 CPU lies on disk here; an open range would pull a multi-GB CUDA build.
.venv/bin/pip install -q -c constraints-cpu.txt "torch==2.13.0"
if [ "$DEV" = 1 ]; then
  .venv/bin/pip install -q -c constraints-cpu.txt -e ".[dev]"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=""
    command -v chromium >/dev/null || need="$need chromium"
    command -v chromedriver >/dev/null || need="$need chromium-driver"
    command -v pg_ctlcluster >/dev/null || need="$need postgresql"
    if [ -n "$need" ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
  fi
else
  .venv/bin/pip install -q -c constraints-cpu.txt -e .
fi
echo "alignstack installed in .venv ($(.venv/bin/python -c 'import alignstack; print(alignstack.__version__)'))"
