"""Negative-sentiment shocks: a window far from its key's own trailing baseline.

For each window record of a key, the baseline is that key's windows that
ended within `baseline_seconds` before the window starts (none of them
overlaps it) and held at least `min_baseline_count` headlines. With at
least `min_baseline_windows` of them, the window is judged by the tests
that ShockConfig.metric selects, and alerts when any of them fires:

* share_negative, mean_score: a robust z-score,

    z = (value - median) / max(1.4826 * MAD, min_scale)     (share_negative)
    z = (median - value) / max(1.4826 * MAD, min_scale)     (mean_score)

  so that a rise of the negative share, or a fall of the mean score, is
  positive; 1.4826 * MAD estimates the standard deviation of normal data.
  It fires at z >= `z_threshold`, in a window of at least `min_count`
  headlines.
* negative_count: the window's negative headlines n against the baseline's
  mean negatives per window r (floored at `min_rate`): the Poisson tail
  P(X >= n), X ~ Poisson(r), fires at most `max_tail_probability`. Its z
  is the normal z of the same tail. A ticker's test only: the market's
  count holds every ticker's burst, and its volume follows the whole
  feed's. Only once the baseline reaches back its whole span: the windows
  of a key's first hour began before its first headline, so they hold part
  of an hour's headlines, which biases a rate, not a share.

An alert names the test that fired (`metric`; the strongest, by z, when
both did) with its numbers, lists every test that fired (`tests_fired`)
and every test judged (`tests`). (configs/monitoring.py, ShockConfig, has
the defaults and why.)

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
import sys
from typing import (Any, Callable, Dict, Iterable, Iterator, List, NamedTuple,
                    Optional, Sequence, Tuple)

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.transforms import userstate
from apache_beam.transforms import window as beam_window
from apache_beam.utils.timestamp import Timestamp
from scipy import special

from finsent.configs.monitoring import SHOCK_METRICS
from finsent.monitoring.headlines import parse_time
from finsent.monitoring.outputs import MARKET
from finsent.monitoring.windows import TOP_HEADLINES

# 1.4826 * MAD is a consistent estimate of a normal distribution's sigma.
MAD_TO_SIGMA = 1.4826
COUNT_TEST = 'negative_count'
# A tail too small for a float is reported as the smallest one, so that its
# z stays finite: JSON has no infinity.
_SMALLEST_TAIL = sys.float_info.min


class Past(NamedTuple):
  """What a key's history keeps of a window: its end, in Unix seconds, and
  the values the tests read. A flat tuple: Beam's state cache sizes what it
  holds object by object."""
  end: float
  negative: int
  share_negative: float
  mean_score: float

  @classmethod
  def of(cls, record: Dict[str, Any]) -> 'Past':
    return cls(parse_time(record['window_end']).timestamp(),
               record['negative'], record['share_negative'],
               record['mean_score'])


def robust_z(value: float, baseline: Sequence[float], min_scale: float,
             metric: str) -> Tuple[float, float, float]:
  """(z, median, scale) of `value` against `baseline` (see module doc)."""
  median = statistics.median(baseline)
  mad = statistics.median(abs(v - median) for v in baseline)
  scale = max(MAD_TO_SIGMA * mad, min_scale)
  deviation = value - median if metric == 'share_negative' else median - value
  return deviation / scale, median, scale


def poisson_tail(observed: int, rate: float) -> float:
  """P(X >= observed) for X ~ Poisson(rate), at least _SMALLEST_TAIL."""
  if observed <= 0:
    return 1.0
  return max(float(special.pdtrc(observed - 1, rate)), _SMALLEST_TAIL)


def tail_z(tail: float) -> float:
  """The standard normal z whose upper tail is `tail`: the count test's
  probability on the scale of the other tests' z."""
  return float(-special.ndtri(tail))


def least_alerting_negatives(config) -> int:
  """The fewest negatives in a window that the count test can alert on:
  the tail is smallest at the lowest rate there can be, `min_rate`."""
  def fires(n):
    return poisson_tail(n, config.min_rate) <= config.max_tail_probability
  high = 1
  while not fires(high):
    high *= 2
  low = high // 2  # does not fire (or is 0)
  while high - low > 1:
    middle = (low + high) // 2
    low, high = (low, middle) if fires(middle) else (middle, high)
  return high


def judge_robust_z(record: Dict[str, Any], baseline: Sequence[Past],
                   metric: str, config) -> Optional[Dict[str, Any]]:
  """The share_negative or mean_score test of `record` (module doc); None
  when the window holds too few headlines for its share to mean much."""
  if record['count'] < config.min_count:
    return None
  value = record[metric]
  z, median, scale = robust_z(value, [getattr(p, metric) for p in baseline],
                              config.min_scale, metric)
  return {'metric': metric, 'value': value,
          'baseline_median': round(median, 4),
          'baseline_scale': round(scale, 4), 'z_score': round(z, 2),
          'z_threshold': config.z_threshold,
          'fired': z >= config.z_threshold}


def judge_count(record: Dict[str, Any], baseline: Sequence[Past],
                config) -> Optional[Dict[str, Any]]:
  """The negative_count test of `record` (module doc); None for the market,
  and while the baseline does not reach back its whole span."""
  if record['key'] == MARKET:
    return None
  start = parse_time(record['window_start']).timestamp()
  length = parse_time(record['window_end']).timestamp() - start
  # A baseline that starts later may be a key's first windows, which began
  # before its first headline and so hold part of a window's headlines
  # (unbiased for a share, too few for a count). Reaching back to within a
  # window of its span's start, it holds at most a window's length of
  # them, which lower its rate by a tenth at most at the defaults. The
  # rule reads only the baseline: a --watch poll, which reads a baseline
  # and a window before what it judges, judges as a batch run does.
  if min(p.end for p in baseline) > start - config.baseline_seconds + length:
    return None
  negatives = [p.negative for p in baseline]
  # The mean, Poisson's own estimate of its rate: an earlier shock in the
  # baseline raises it, which makes the test stricter, never looser, and
  # unlike a median of a few negatives a window it is not a whole number.
  rate = max(statistics.fmean(negatives), config.min_rate)
  tail = poisson_tail(record['negative'], rate)
  return {'metric': COUNT_TEST, 'value': record['negative'],
          'baseline_rate': round(rate, 4),
          'baseline_median': statistics.median(negatives),
          'tail_probability': float(f'{tail:.3g}'),
          'max_tail_probability': config.max_tail_probability,
          'z_score': round(tail_z(tail), 2),
          'z_threshold': round(tail_z(config.max_tail_probability), 2),
          'fired': tail <= config.max_tail_probability}


def _judge(test: str, record: Dict[str, Any], baseline: Sequence[Past],
           config) -> Optional[Dict[str, Any]]:
  if test == COUNT_TEST:
    return judge_count(record, baseline, config)
  return judge_robust_z(record, baseline, test, config)


def judge_window(record: Dict[str, Any], history: Sequence[Past],
                 config) -> Optional[Dict[str, Any]]:
  """The alert for `record`, or None. `history` is the key's earlier
  windows; `config` a ShockConfig."""
  start = parse_time(record['window_start']).timestamp()
  baseline = [p for p in history
              if start - config.baseline_seconds < p.end <= start]
  if len(baseline) < config.min_baseline_windows:
    return None
  judged = [result for result in (_judge(test, record, baseline, config)
                                  for test in config.tests) if result]
  fired = [result for result in judged if result['fired']]
  if not fired:
    return None
  # At the top level the strongest test's numbers, which the run's summary,
  # the report and webhooks read whatever the test.
  strongest = max(fired, key=lambda result: result['z_score'])
  return {
      'alert_id': record['id'], 'key': record['key'],
      'window_start': record['window_start'],
      'window_end': record['window_end'],
      **{k: v for k, v in strongest.items() if k != 'fired'},
      'tests_fired': [result['metric'] for result in fired],
      'tests': judged, 'count': record['count'],
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
                   history: Dict[str, Past], config,
                   alerted: Optional[Dict[str, float]] = None
                   ) -> Iterator[Dict[str, Any]]:
  """Judges `records` (in the order given) and adds each to `history`
  (window end -> Past); yields the alerts. With `alerted` (alert id ->
  window end in Unix seconds, kept across calls), a window judged again
  without an alert yields a retraction of the one it had."""
  for record in records:
    alert = judge_window(record, sorted(history.values()), config)
    past = Past.of(record)
    if record['count'] >= config.min_baseline_count:
      history[record['window_end']] = past
    if alert:
      if alerted is not None:
        alerted[alert['alert_id']] = past.end
      yield alert
    elif alerted is not None and \
        alerted.pop(record['id'], None) is not None:
      yield retraction(record)


def prune_history(history: Dict[str, Past], alerted: Dict[str, float],
                  keep_seconds: float
                  ) -> Tuple[Dict[str, Past], Dict[str, float]]:
  """The history entries and alerted windows that ended within
  `keep_seconds` of the newest entry."""
  if not history:
    return history, alerted
  oldest = max(p.end for p in history.values()) - keep_seconds
  return ({k: p for k, p in history.items() if p.end > oldest},
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


def check_config(config) -> None:
  """Raises ValueError naming the first ShockConfig value the detector
  cannot judge with (a flag or a --config file is checked as it is read;
  this also catches a ShockConfig made in code)."""
  if config.metric not in SHOCK_METRICS:
    raise ValueError(f'shock metric must be one of '
                     f'{", ".join(SHOCK_METRICS)}, '
                     f'got {config.metric!r}')
  # Written so that NaN fails them too.
  if not 0 < config.max_tail_probability < 1:
    raise ValueError('max_tail_probability must be above 0 and below 1, '
                     f'got {config.max_tail_probability}')
  if not 0 < config.min_rate < float('inf'):
    raise ValueError('min_rate must be a positive number, got '
                     f'{config.min_rate}')


def can_matter(config) -> Callable[[Dict[str, Any]], bool]:
  """Whether a window record can alert or join a baseline; the others are
  dropped before the detector keeps anything of them."""
  least_negatives = (least_alerting_negatives(config)
                     if COUNT_TEST in config.tests else float('inf'))

  def matters(record: Dict[str, Any]) -> bool:
    return (record['count'] >= min(config.min_count,
                                   config.min_baseline_count) or
            record['negative'] >= least_negatives)
  return matters


class DetectShocks(beam.PTransform):
  """Window records -> alert records (module docstring). `config` is a
  ShockConfig; `window_seconds` the windows' length. `bounded` input (files
  read once) is grouped per key and judged in one go, without Beam state:
  on the DirectRunner, state's bookkeeping cost more than the judging."""

  def __init__(self, config, window_seconds: int, bounded: bool = False):
    super().__init__()
    check_config(config)
    self._config = config
    self._window_seconds = window_seconds
    self._bounded = bounded

  def expand(self, window_records):
    keyed = (window_records
             | 'BigEnough' >> beam.Filter(can_matter(self._config))
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
