"""Knobs of the monitoring job (`finsent monitor`) and of `finsent replay`
(docs/monitoring.md), and what one monitoring run reads and writes."""

import dataclasses
import os
from typing import Optional, Tuple

from finsent.configs import flag_types
from finsent.configs.knobs import knob
from finsent.configs.paths import DATA_DIR
from finsent.configs.serving import PRODUCTION_MODEL_NAME

# Company names -> tickers, besides $cashtags (monitoring/entities.py).
TICKER_ALIASES = os.path.join(DATA_DIR, 'ticker_aliases.csv')
SHOCK_METRICS = ('share_negative', 'mean_score')


@dataclasses.dataclass(frozen=True)
class ShockConfig:
  """When a window is a negative-sentiment shock (monitoring/shocks.py).

  A window's `metric` is compared with the same key's trailing baseline:
  its windows that ended within `baseline_seconds` before this window
  starts (so never overlapping it). The robust z-score is
  (value - median) / max(1.4826 * MAD, min_scale): the median and the
  median absolute deviation resist earlier shocks in the baseline, and
  `min_scale` keeps a flat baseline from turning noise into alerts.
  """
  metric: str = knob(
      'share_negative', 'share_negative (alerts when it rises) or '
      'mean_score (when it falls)', choices=SHOCK_METRICS)
  z_threshold: float = knob(3.5, 'robust z-score that makes a shock',
                            parse=flag_types.positive_float)
  # Below 20 the share's own sampling error (sqrt(p(1-p)/n) is 0.10 at
  # p=0.3, n=20) reaches min_scale, and a handful of headlines makes a
  # "shock": with 10, a shuffled replay with no shock alerted on tickers
  # whose windows held 14-15 headlines (docs/monitoring.md).
  min_count: int = knob(20, 'headlines a window needs before it can alert',
                        parse=flag_types.positive_int)
  min_baseline_count: int = knob(
      5, 'headlines a window needs to be part of a baseline',
      parse=flag_types.positive_int)
  baseline_seconds: int = knob(6 * 3600, 'span of the trailing baseline',
                               parse=flag_types.positive_int)
  min_baseline_windows: int = knob(
      12, 'baseline windows needed before a key can alert at all',
      parse=flag_types.positive_int)
  # A share of 0.10 is 10 percentage points.
  min_scale: float = knob(0.10, "floor of the baseline's spread, in the "
                          "metric's units", parse=flag_types.positive_float)
  top_headlines: int = knob(5, "headlines an alert quotes: the window's most "
                            'negative', parse=flag_types.positive_int)


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
  """Scoring, windows and outputs of the monitoring job.

  The knobs with `cli=False` are set in a --config file only: `finsent
  monitor` has no flag of its own for them.
  """
  # Sliding event-time windows (published_at), per ticker and overall.
  window_seconds: int = knob(3600, 'length of a sliding window',
                             parse=flag_types.positive_int)
  period_seconds: int = knob(300, 'a window starts every this many seconds',
                             parse=flag_types.positive_int)
  # Later ones are dropped by Beam and counted.
  allowed_lateness_seconds: int = knob(
      3600, 'headlines later than the watermark by up to this much still '
      'update their windows (a late pane)', parse=flag_types.non_negative_int)
  # beam.BatchElements bounds; `finsent monitor` lowers min_batch_size to
  # max_batch_size.
  min_batch_size: int = knob(16, 'smallest RunInference batch',
                             parse=flag_types.positive_int, cli=False)
  max_batch_size: int = knob(256, 'largest RunInference batch',
                             parse=flag_types.positive_int)
  # Then a batch's headlines go to the dead letters.
  timeout_seconds: float = knob(
      10.0, "through a server: the client's timeout per batch",
      parse=flag_types.positive_float, cli=False)
  retries: int = knob(3, 'through a server: retries per batch',
                      parse=flag_types.non_negative_int, cli=False)
  webhook_timeout_seconds: float = knob(
      5.0, 'timeout of an alert POSTed to the webhook',
      parse=flag_types.positive_float, cli=False)
  webhook_retries: int = knob(3, 'retries of an alert POSTed to the webhook',
                              parse=flag_types.non_negative_int, cli=False)
  # No parse: `finsent monitor` checks it, flag or file, with the message
  # its users (and tests) know: "--file_system_poll_wait_seconds must be
  # > 0".
  file_system_poll_wait_seconds: float = knob(
      10.0, 'with --watch: seconds between looks for new files')
  shock: ShockConfig = ShockConfig()


@dataclasses.dataclass(frozen=True)
class MonitorRun:
  """What one monitoring run reads, scores with and writes: the inputs and
  outputs `finsent monitor` takes as flags (never from a --config file).

  The source, one of: `input` (files, globs or directories; with `watch`,
  polled for new files until stopped), `input_subscription` (Pub/Sub) or
  `kafka_topic` (Kafka, at `bootstrap_servers`). The model, one of:
  `saved_model` (in process) or `model_url` (TF Serving, or `finsent
  serve`, through its `protocol` API, serving `model_name`).
  """
  output: str
  input: Tuple[str, ...] = ()
  watch: bool = False
  input_subscription: Optional[str] = None
  kafka_topic: Optional[str] = None
  bootstrap_servers: str = 'localhost:9092'
  saved_model: Optional[str] = None
  model_url: Optional[str] = None
  protocol: str = 'rest'
  model_name: str = PRODUCTION_MODEL_NAME
  # name,ticker rows, besides $cashtags (monitoring/entities.py).
  ticker_aliases: str = TICKER_ALIASES
  webhook_url: Optional[str] = None  # each alert is POSTed here as JSON
  metrics_port: Optional[int] = None  # Prometheus, while the job runs

  @property
  def streaming(self) -> bool:
    """Unbounded sources: Pub/Sub, Kafka."""
    return bool(self.input_subscription or self.kafka_topic)


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  """`finsent replay`: labelled data -> a timestamped headline stream with
  an injected negative shock (monitoring/replay.py, whose check_config
  checks every value, in a flag or a --config file)."""
  start: str = knob('2026-03-02T00:00:00Z', 'time of the first headline, '
                    'ISO-8601 with a timezone')
  span_hours: float = knob(12.0, 'hours the stream spans')
  # Comma-separated as a flag, which `finsent replay` adds itself.
  tickers: Tuple[str, ...] = knob(('ACME', 'BOLT', 'CRUX', 'DYNA'),
                                  'tickers given to headlines', cli=False)
  ticker_share: float = knob(
      0.6, "share of headlines given a ticker's cashtag; the rest are "
      'market-wide')
  shock_at: float = knob(0.75, 'where in the span the shock starts (0..1)')
  shock_size: int = knob(30, 'negative headlines the shock adds for the '
                         'shocked ticker')
  shock_minutes: float = knob(15.0, 'minutes the shock lasts')
  seed: int = knob(7, 'seed of the shuffle and the timestamps')
