"""Sentiment per ticker, per topic and for the whole market in sliding
event-time windows.

Each scored headline counts once for the market (key `MARKET`, every
headline), once for each ticker it names and, when the model has a topic
head, once for its topic (key `topic:<name>`, outputs.topic_key). Windows are in event time
(`published_at`): `window_seconds` long, one starting every
`period_seconds`. A window fires when the watermark passes its end, and
again for every headline that arrives late but within the allowed lateness
(accumulating: each firing is the window's whole content so far, so a
later record of a window replaces the earlier one).

A window record (`windows.jsonl`):
  {"id": "ACME/2026-03-02T09:05:00Z", "key": "ACME",
   "window_start": ..., "window_end": ..., "count": 17,
   "negative": 9, "neutral": 5, "positive": 3,
   "share_negative": 0.5294, "share_positive": 0.1765, "mean_score": -0.31,
   "pane": "ON_TIME", "pane_index": 0}
plus, for the shock detector only, `top_headlines`: the window's most
negative headlines.
"""

import heapq
from typing import Any, Dict, Iterable, Tuple

import apache_beam as beam
from apache_beam.transforms import trigger
from apache_beam.transforms import window as beam_window
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from finsent.data.loaders import LABELS
from finsent.monitoring.headlines import format_time
from finsent.monitoring.outputs import MARKET
from finsent.monitoring.outputs import topic_key
from finsent.monitoring.scoring import ScoredHeadline

TOP_HEADLINES = 'top_headlines'


def by_key(scored: ScoredHeadline) -> Iterable[Tuple[str, ScoredHeadline]]:
  """The headline under the market key, under each of its tickers and
  under its topic."""
  yield MARKET, scored
  for ticker in scored.tickers:
    yield ticker, scored
  if scored.topic is not None:
    yield topic_key(scored.topic), scored


class SentimentCombineFn(beam.CombineFn):
  """Counts by predicted label, the sum of scores, and the `top_n` most
  negative headlines (by p_negative) of a window."""

  def __init__(self, top_n: int):
    super().__init__()
    self._top_n = top_n

  def create_accumulator(self):
    return {'counts': dict.fromkeys(LABELS, 0), 'score_sum': 0.0, 'top': []}

  def add_input(self, accumulator, scored: ScoredHeadline):
    accumulator['counts'][scored.label] += 1
    accumulator['score_sum'] += scored.score
    top = accumulator['top']
    rank = (scored.probabilities['negative'], scored.headline.id)
    # Most headlines do not make the top: build the quoted record only for
    # those that do.
    if len(top) < self._top_n:
      heapq.heappush(top, (*rank, scored.to_dict()))
    elif rank > top[0][:2]:
      heapq.heapreplace(top, (*rank, scored.to_dict()))
    return accumulator

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for accumulator in accumulators:
      self._merge_into(merged, accumulator)
    return merged

  def _merge_into(self, merged, accumulator):
    for label, n in accumulator['counts'].items():
      merged['counts'][label] += n
    merged['score_sum'] += accumulator['score_sum']
    top = merged['top']
    for entry in accumulator['top']:
      if len(top) < self._top_n:
        heapq.heappush(top, entry)
      elif entry[:2] > top[0][:2]:
        heapq.heapreplace(top, entry)
    return merged

  def extract_output(self, accumulator) -> Dict[str, Any]:
    counts = accumulator['counts']
    total = sum(counts.values())
    return {
        'count': total, **counts,
        'share_negative': round(counts['negative'] / total, 4),
        'share_positive': round(counts['positive'] / total, 4),
        'mean_score': round(accumulator['score_sum'] / total, 4),
        TOP_HEADLINES: [row for _, _, row in
                        sorted(accumulator['top'], reverse=True)],
    }


class _SlotCombineFn(SentimentCombineFn):
  """Scored headlines -> their accumulator, unfinished: a slot's part of
  every window that covers the slot."""

  def extract_output(self, accumulator):
    return accumulator


class _WindowOfSlotsCombineFn(SentimentCombineFn):
  """The accumulators of a window's slots -> the window's aggregate."""

  def add_input(self, accumulator, slot_accumulator):
    return self._merge_into(accumulator, slot_accumulator)


def window_record(key: str, start: float, end: float,
                  aggregate: Dict[str, Any], pane: str,
                  pane_index: int) -> Dict[str, Any]:
  """A window record (module docstring); start and end in Unix seconds."""
  end_time = format_time(end)
  return {'id': f'{key}/{end_time}', 'key': key,
          'window_start': format_time(start), 'window_end': end_time,
          **aggregate, 'pane': pane, 'pane_index': pane_index}


class _WindowRecord(beam.DoFn):
  """(key, aggregate) in its Beam window -> a window record."""

  def process(self, keyed_aggregate, window=beam.DoFn.WindowParam,
              pane=beam.DoFn.PaneInfoParam):
    key, aggregate = keyed_aggregate
    yield window_record(key, float(window.start), float(window.end),
                        aggregate, PaneInfoTiming.to_string(pane.timing),
                        pane.index)


def slot_start(timestamp: float, period_seconds: int) -> int:
  """The start of the slot `timestamp` falls in: slots are the
  `period_seconds` between two window starts."""
  return int(timestamp - timestamp % period_seconds)


def window_starts(slot: int, window_seconds: int,
                  period_seconds: int) -> range:
  """The starts of the sliding windows that cover the slot starting at
  `slot`, oldest first."""
  return range(slot - window_seconds + period_seconds, slot + period_seconds,
               period_seconds)


def _in_its_slot(scored: ScoredHeadline, period_seconds: int
                 ) -> Iterable[Tuple[Tuple[str, int], ScoredHeadline]]:
  """scored -> ((key, slot start), scored) for each of its keys."""
  slot = slot_start(scored.headline.timestamp, period_seconds)
  for key, _ in by_key(scored):
    yield (key, slot), scored


def _slot_in_each_window(keyed_slot, window_seconds: int,
                         period_seconds: int):
  """((key, slot start), accumulator) -> ((key, window start, window end),
  accumulator) for each sliding window that covers the slot."""
  (key, slot), accumulator = keyed_slot
  for start in window_starts(slot, window_seconds, period_seconds):
    yield (key, start, start + window_seconds), accumulator


class WindowSentiment(beam.PTransform):
  """ScoredHeadline -> window records, per key, in sliding event-time
  windows (see the module docstring).

  `bounded` is for input read once (files): nothing in it can be late, so
  each window fires once, at the end. There each headline is aggregated
  once per key, into its slot (the `period_seconds` between two window
  starts), and each window merges the aggregates of the slots it covers,
  keyed by the window in the global window: the same records (tested) as
  Beam's SlidingWindows give, which would put each headline into
  window/period windows, one by one, and whose trigger bookkeeping on the
  DirectRunner grows with the square of a key's windows.
  """

  def __init__(self, window_seconds: int, period_seconds: int,
               allowed_lateness_seconds: int, top_headlines: int,
               bounded: bool = False):
    super().__init__()
    if window_seconds <= 0 or period_seconds <= 0 or \
        window_seconds % period_seconds:
      raise ValueError(
          f'the window ({window_seconds} s) must be a positive multiple of '
          f'its period ({period_seconds} s)')
    self._window_seconds = window_seconds
    self._period_seconds = period_seconds
    self._allowed_lateness = allowed_lateness_seconds
    self._top_headlines = top_headlines
    self._bounded = bounded

  def expand(self, scored):
    if self._bounded:
      return (scored
              | 'InItsSlot' >> beam.FlatMap(_in_its_slot,
                                            self._period_seconds)
              | 'AggregateSlots' >> beam.CombinePerKey(
                  _SlotCombineFn(self._top_headlines))
              | 'InEachWindow' >> beam.FlatMap(
                  _slot_in_each_window, self._window_seconds,
                  self._period_seconds)
              | 'Aggregate' >> beam.CombinePerKey(
                  _WindowOfSlotsCombineFn(self._top_headlines))
              | 'Record' >> beam.MapTuple(
                  lambda key_window, aggregate: window_record(
                      *key_window, aggregate, 'ON_TIME', 0)))
    return (scored
            | 'AtPublishedTime' >> beam.Map(
                lambda s: beam_window.TimestampedValue(
                    s, s.headline.timestamp))
            | 'ByKey' >> beam.FlatMap(by_key)
            | 'SlidingWindows' >> beam.WindowInto(
                beam_window.SlidingWindows(self._window_seconds,
                                           self._period_seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                allowed_lateness=Duration(seconds=self._allowed_lateness),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING)
            | 'Aggregate' >> beam.CombinePerKey(
                SentimentCombineFn(self._top_headlines))
            | 'Record' >> beam.ParDo(_WindowRecord()))


def without_top_headlines(record: Dict[str, Any]) -> Dict[str, Any]:
  """A window record as windows.jsonl holds it."""
  return {k: v for k, v in record.items() if k != TOP_HEADLINES}
