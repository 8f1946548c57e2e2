#!/usr/bin/env bash
# Run the whole test suite (what CI runs). Starts a local PostgreSQL for the storage tests when
# one is installed and none is reachable; those tests skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOKENIZERS_PARALLELISM=false
if [ -z "${ALIGNSTACK_TEST_PG_URL:-}" ] && [ -f .ci/postgres.sh ] && [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
  if sh .ci/postgres.sh >/tmp/alignstack-postgres.log 2>&1; then
    export ALIGNSTACK_TEST_PG_URL=postgresql+psycopg://postgres@localhost:5432/postgres
  else
    echo "note: could not start PostgreSQL (see /tmp/alignstack-postgres.log); PostgreSQL tests will skip"
  fi
fi
.venv/bin/ruff check alignstack tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
