"""Negative-sentiment shocks: a window far from its key's own trailing baseline.

For each window record of a key, the baseline is that key's windows that
ended within `baseline_seconds` before the window starts (none of them
overlaps it) and held at least `min_baseline_count` headlines. With at least
`min_baseline_windows` of them, the window is scored with a robust
z-score,

  z = (value - median) / max(1.4826 * MAD, min_scale)     (share_negative)
  z = (median - value) / max(1.4826 * MAD, min_scale)     (mean_score)

so that a rise of the negative share, or a fall of the mean score, is
positive; 1.4826 * MAD estimates the standard deviation of normal data.
A window with at least `min_count` headlines and z >= `z_threshold` is an
alert. (configs/monitoring.py, ShockConfig, has the defaults and why.)

`DetectShocks` judges each key's windows in event-time order (the order
of their ends) whatever order they arrive in. On a stream it keeps each
key's history in Beam state: records wait, buffered, for an event-time
timer. On bounded input it groups each key's windows and judges them in
one go. A late
pane of a window replaces that window in the history and is judged again;
its alert, if any, has the same id and replaces the earlier one, and if it
no longer alerts, a retraction (`"retracted": true`) takes the earlier
alert back.
"""

import json
import statistics
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.transforms import userstate
from apache_beam.transforms import window as beam_window
from apache_beam.utils.timestamp import Timestamp

from finsent.configs.monitoring import SHOCK_METRICS
from finsent.monitoring.headlines import parse_time
from finsent.monitoring.windows import TOP_HEADLINES

# 1.4826 * MAD is a consistent estimate of a normal distribution's sigma.
MAD_TO_SIGMA = 1.4826


def robust_z(value: float, baseline: Sequence[float], min_scale: float,
             metric: str) -> Tuple[float, float, float]:
  """(z, median, scale) of `value` against `baseline` (see module doc)."""
  median = statistics.median(baseline)
  mad = statistics.median(abs(v - median) for v in baseline)
  scale = max(MAD_TO_SIGMA * mad, min_scale)
  deviation = value - median if metric == 'share_negative' else median - value
  return deviation / scale, median, scale


def judge_window(record: Dict[str, Any], history: Sequence[Tuple[float, float]],
                 config) -> Optional[Dict[str, Any]]:
  """The alert for `record`, or None. `history` is the key's earlier
  windows as (end in Unix seconds, metric value); `config` a ShockConfig."""
  if record['count'] < config.min_count:
    return None
  start = parse_time(record['window_start']).timestamp()
  baseline = [value for end, value in history
              if start - config.baseline_seconds < end <= start]
  if len(baseline) < config.min_baseline_windows:
    return None
  value = record[config.metric]
  z, median, scale = robust_z(value, baseline, config.min_scale,
                              config.metric)
  if z < config.z_threshold:
    return None
  return {
      'alert_id': record['id'], 'key': record['key'],
      'window_start': record['window_start'],
      'window_end': record['window_end'], 'metric': config.metric,
      'value': value, 'baseline_median': round(median, 4),
      'baseline_scale': round(scale, 4), 'z_score': round(z, 2),
      'z_threshold': config.z_threshold, 'count': record['count'],
      'baseline_windows': len(baseline), 'pane': record['pane'],
      TOP_HEADLINES: record[TOP_HEADLINES],
  }


def retraction(window: Dict[str, Any]) -> Dict[str, Any]:
  """The record that takes back the alert of `window` (a window record or
  its alert): a late pane of it no longer alerts. Compaction removes the
  alert (monitoring/outputs.py)."""
  return {'alert_id': window.get('alert_id', window.get('id')),
          'key': window['key'], 'window_start': window['window_start'],
          'window_end': window['window_end'], 'retracted': True}


def judge_in_order(records: Iterable[Dict[str, Any]],
                   history: Dict[str, Tuple[float, float]], config,
                   alerted: Optional[Dict[str, float]] = None
                   ) -> Iterator[Dict[str, Any]]:
  """Judges `records` (in the order given) and adds each to `history`
  (window end -> (end in Unix seconds, metric value)); yields the alerts.
  With `alerted` (alert id -> window end in Unix seconds, kept across
  calls), a window judged again without an alert yields a retraction of
  the one it had."""
  for record in records:
    alert = judge_window(record, sorted(history.values()), config)
    end = parse_time(record['window_end']).timestamp()
    if record['count'] >= config.min_baseline_count:
      history[record['window_end']] = (end, record[config.metric])
    if alert:
      if alerted is not None:
        alerted[alert['alert_id']] = end
      yield alert
    elif alerted is not None and \
        alerted.pop(record['id'], None) is not None:
      yield retraction(record)


def prune_history(history: Dict[str, Tuple[float, float]],
                  alerted: Dict[str, float], keep_seconds: float
                  ) -> Tuple[Dict[str, Tuple[float, float]],
                             Dict[str, float]]:
  """The history entries and alerted windows that ended within
  `keep_seconds` of the newest entry."""
  if not history:
    return history, alerted
  oldest = max(end for end, _ in history.values()) - keep_seconds
  return ({k: v for k, v in history.items() if v[0] > oldest},
          {k: end for k, end in alerted.items() if end > oldest})


def _in_event_time_order(records: Iterable[Dict[str, Any]]
                         ) -> List[Dict[str, Any]]:
  return sorted(records, key=lambda r: (r['window_end'], r['pane_index']))


class _DetectShocksFn(beam.DoFn):
  """Per key, in the global window: judges window records in event-time
  order against the key's history (module docstring)."""

  PENDING = userstate.BagStateSpec('pending', coders.PickleCoder())
  HISTORY = userstate.ReadModifyWriteStateSpec('history',
                                               coders.PickleCoder())
  TIMER_AT = userstate.ReadModifyWriteStateSpec('timer_at',
                                                coders.PickleCoder())
  READY = userstate.TimerSpec('ready', userstate.TimeDomain.WATERMARK)

  def __init__(self, config, window_seconds: int):
    super().__init__()
    self._config = config
    # Older windows are in no baseline of a window ending at or after the
    # newest one.
    self._keep_seconds = config.baseline_seconds + window_seconds

  def process(self, keyed_record, timestamp=beam.DoFn.TimestampParam,
              pending=beam.DoFn.StateParam(PENDING),
              timer_at=beam.DoFn.StateParam(TIMER_AT),
              ready=beam.DoFn.TimerParam(READY)):
    _, record = keyed_record
    # Timers fire at whole milliseconds: a record waits for the millisecond
    # its timestamp falls in. Every record arrives at or behind the
    # watermark (it is a window's output), so one timer at the newest
    # pending record fires as soon as the watermark moves, and takes all of
    # them in order: one firing per batch of windows, not one per window.
    due_ms = int(timestamp.micros // 1000)
    # As JSON: Beam's state cache sizes what it holds object by object,
    # which for nested dicts cost more than the whole detection.
    pending.add((due_ms, json.dumps(record)))
    scheduled = timer_at.read()
    if scheduled is None or due_ms > scheduled:
      ready.set(Timestamp(micros=due_ms * 1000))
      timer_at.write(due_ms)

  @userstate.on_timer(READY)
  def on_ready(self, fire_timestamp=beam.DoFn.TimestampParam,
               pending=beam.DoFn.StateParam(PENDING),
               history_state=beam.DoFn.StateParam(HISTORY),
               timer_at=beam.DoFn.StateParam(TIMER_AT),
               ready=beam.DoFn.TimerParam(READY)) -> Iterable[Dict[str, Any]]:
    now_ms = int(fire_timestamp.micros // 1000)
    waiting = list(pending.read())
    due = _in_event_time_order(json.loads(record) for due_ms, record in waiting
                               if due_ms <= now_ms)
    later = [w for w in waiting if w[0] > now_ms]
    pending.clear()
    for entry in later:
      pending.add(entry)
    timer_at.clear()
    if later:
      next_ms = max(due_ms for due_ms, _ in later)
      ready.set(Timestamp(micros=next_ms * 1000))
      timer_at.write(next_ms)
    history, alerted = history_state.read() or ({}, {})
    yield from judge_in_order(due, history, self._config, alerted)
    history_state.write(prune_history(history, alerted, self._keep_seconds))


class DetectShocks(beam.PTransform):
  """Window records -> alert records (module docstring). `config` is a
  ShockConfig; `window_seconds` the windows' length. `bounded` input (files
  read once) is grouped per key and judged in one go, without Beam state:
  on the DirectRunner, state's bookkeeping cost more than the judging."""

  def __init__(self, config, window_seconds: int, bounded: bool = False):
    super().__init__()
    if config.metric not in SHOCK_METRICS:
      raise ValueError(f'shock metric must be one of '
                       f'{", ".join(SHOCK_METRICS)}, '
                       f'got {config.metric!r}')
    self._config = config
    self._window_seconds = window_seconds
    self._bounded = bounded

  def expand(self, window_records):
    # Smaller windows can neither alert nor join a baseline.
    least = min(self._config.min_count, self._config.min_baseline_count)
    keyed = (window_records
             | 'BigEnough' >> beam.Filter(lambda r: r['count'] >= least)
             | 'ByKey' >> beam.Map(lambda r: (r['key'], r)).with_output_types(
                 Tuple[str, Dict[str, Any]])
             | 'GlobalWindow' >> beam.WindowInto(beam_window.GlobalWindows()))
    if self._bounded:
      config = self._config
      return (keyed
              | 'AllOfAKey' >> beam.GroupByKey()
              | 'Judge' >> beam.FlatMap(lambda key_records: judge_in_order(
                  _in_event_time_order(key_records[1]), {}, config)))
    return keyed | 'Judge' >> beam.ParDo(
        _DetectShocksFn(self._config, self._window_seconds))
