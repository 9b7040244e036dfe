"""The monitoring job's stages as PTransforms and writers: the one pipeline
of a run (monitoring/job.py) and each poll of a watch (monitoring/watch.py)
are made of them."""

import os
from typing import Any, List, Optional

import apache_beam as beam

from finsent.monitoring import metrics
from finsent.monitoring.entities import TickerExtractor
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import DEAD_LETTERS_FILE
from finsent.monitoring.outputs import WINDOWS_FILE
from finsent.monitoring.scoring import ScoreHeadlines
from finsent.monitoring.shocks import DetectShocks
from finsent.monitoring.sinks import AppendJsonl
from finsent.monitoring.sinks import PostToWebhook
from finsent.monitoring.windows import WindowSentiment
from finsent.monitoring.windows import without_top_headlines
from finsent import configs


class TickersAndScores(beam.PTransform):
  """Headlines -> (ScoredHeadlines with their tickers, dead letters of
  scoring)."""

  def __init__(self, model_handler, extract_tickers: TickerExtractor):
    super().__init__()
    self._model_handler = model_handler
    self._extract_tickers = extract_tickers

  def expand(self, headlines):
    extract = self._extract_tickers
    return (headlines
            | 'Tickers' >> beam.Map(lambda h: (h, extract(h.text)))
            | 'Score' >> ScoreHeadlines(self._model_handler))


class WindowsAndShocks(beam.PTransform):
  """ScoredHeadlines -> (window records, alerts). `judged`, when given,
  picks and updates the window records that are judged and returned
  (monitoring.watch: the windows a poll closes)."""

  def __init__(self, config: configs.MonitorConfig, bounded: bool,
               judged: Optional[beam.PTransform] = None):
    super().__init__()
    self._config = config
    self._bounded = bounded
    self._judged = judged

  def expand(self, scored):
    windows = scored | 'Windows' >> WindowSentiment(
        self._config.window_seconds, self._config.period_seconds,
        self._config.allowed_lateness_seconds,
        self._config.shock.top_headlines, bounded=self._bounded)
    if self._judged:
      windows = windows | 'Judged' >> self._judged
    alerts = windows | 'Shocks' >> DetectShocks(
        self._config.shock, self._config.window_seconds,
        bounded=self._bounded)
    return windows, alerts


def count_parse_failures(dead_letters):
  return dead_letters | 'CountParseFailures' >> beam.Map(
      _counted_parse_failure)


def write_windows_and_alerts(windows, alerts, output_dir: str,
                             webhook_url: Optional[str],
                             config: configs.MonitorConfig) -> List[Any]:
  """Window records and alerts into output_dir's changelogs, alerts also
  to `webhook_url` (if any); returns the webhook's dead letters (a list of
  at most one PCollection). The windows' and alerts' metrics count what is
  written (a watch judges more than it writes)."""
  _ = (windows | 'WindowMetrics' >> beam.Map(_counted_window)
       | 'WindowRecord' >> beam.Map(without_top_headlines)
       | 'WriteWindows' >> beam.ParDo(
           AppendJsonl(os.path.join(output_dir, WINDOWS_FILE))))
  _ = (alerts | 'AlertMetrics' >> beam.Map(_counted_alert)
       | 'WriteAlerts' >> beam.ParDo(
           AppendJsonl(os.path.join(output_dir, ALERTS_FILE))))
  if not webhook_url:
    return []
  return [alerts | 'Webhook' >> beam.ParDo(PostToWebhook(
      webhook_url, config.webhook_timeout_seconds,
      config.webhook_retries))]


def write_dead_letters(dead_letters: List[Any], output_dir: str) -> None:
  _ = (dead_letters | 'DeadLetters' >> beam.Flatten()
       | 'DeadLetterRecord' >> beam.Map(lambda d: d.to_dict())
       | 'WriteDeadLetters' >> beam.ParDo(
           AppendJsonl(os.path.join(output_dir, DEAD_LETTERS_FILE))))


def _counted_window(record):
  if record['pane'] == 'LATE':
    metrics.LATE_HEADLINES.inc()
  metrics.WINDOW_SHARE_NEGATIVE.labels(record['key']).set(
      record['share_negative'])
  return record


def _counted_alert(alert):
  if not alert.get('retracted'):
    metrics.ALERTS.labels(alert['key']).inc()
  return alert


def _counted_parse_failure(dead_letter):
  metrics.HEADLINES.labels('dead_letter').inc()
  metrics.DEAD_LETTERS.labels('parse').inc()
  return dead_letter
