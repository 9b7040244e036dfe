"""Shared test fixtures and paths."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The full Twitter Financial News Sentiment set, beside the project (never
# copied into it).
TWITTER_FNS_DIR = os.path.join(ROOT, '..', 'shared', 'data',
                               'twitter_financial_news_sentiment')
LOAD_SAVED_MODEL = os.path.join(ROOT, 'tests', 'load_saved_model.py')


def predict_in_fresh_process(saved_model_dir, texts):
  """Runs tests/load_saved_model.py in a new Python; returns its JSON answer."""
  import json
  result = subprocess.run(
      [sys.executable, LOAD_SAVED_MODEL, saved_model_dir, *texts],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def write(tmp_path):
  """write(name, content) -> path of a file in tmp_path (str or bytes)."""
  def _write(name, content):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
      path.write_bytes(content)
    else:
      path.write_text(content, encoding='utf-8')
    return str(path)
  return _write
