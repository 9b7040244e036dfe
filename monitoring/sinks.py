"""Where the monitoring job's records go: JSONL changelogs (see
monitoring/outputs.py) and a webhook."""

import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List

import apache_beam as beam

from finsent.monitoring import metrics
from finsent.monitoring.headlines import DeadLetter

_APPEND_LOCK = threading.Lock()


class AppendJsonl(beam.DoFn):
  """Appends each record (a dict) to `path` as one JSON line; one write per
  bundle, so a reader never sees half a line from a finished bundle."""

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def start_bundle(self):
    self._lines: List[str] = []

  def process(self, record: Dict[str, Any]):
    self._lines.append(json.dumps(record, ensure_ascii=False) + '\n')

  def finish_bundle(self):
    if self._lines:
      with _APPEND_LOCK, open(self._path, 'a', encoding='utf-8') as f:
        f.write(''.join(self._lines))
        f.flush()
        os.fsync(f.fileno())
      self._lines = []


class PostToWebhook(beam.DoFn):
  """POSTs each alert as JSON to `url`; retries with backoff, then gives the
  alert to the dead letters (it is in alerts.jsonl either way)."""

  def __init__(self, url: str, timeout_seconds: float, retries: int,
               backoff_seconds: float = 0.5):
    super().__init__()
    self._url = url
    self._timeout = timeout_seconds
    self._retries = retries
    self._backoff = backoff_seconds

  def setup(self):
    import requests
    self._session = requests.Session()

  def teardown(self):
    self._session.close()

  def process(self, alert: Dict[str, Any]) -> Iterator[DeadLetter]:
    import requests
    error = None
    for attempt in range(self._retries + 1):
      if attempt:
        time.sleep(self._backoff * 2 ** (attempt - 1))
      try:
        response = self._session.post(self._url, json=alert,
                                      timeout=self._timeout)
      except requests.RequestException as e:
        error = f'{type(e).__name__}: {e}'
        continue
      if response.ok:
        return
      error = f'HTTP {response.status_code}: {response.text[:200]}'
      if response.status_code < 500 and response.status_code != 429:
        break  # the webhook refused this alert: retrying will not help
    metrics.DEAD_LETTERS.labels('webhook').inc()
    yield DeadLetter('webhook', alert['alert_id'], alert,
                     f'{self._url}: {error}')
