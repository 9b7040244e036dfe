"""The monitoring job's parts, each on Beam's TestPipeline (and TestStream
for event time, watermarks and late data), with hand-computed values.

The whole job, with a real model in process and through a real server, is
in test_monitor_e2e.py."""

import dataclasses
import datetime
import http.server
import json
import math
import os
import random
import statistics
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from apache_beam.transforms import window as beam_window
import numpy
import pytest

from finsent.monitoring import shocks
from finsent.monitoring import watch
from finsent.monitoring.entities import AliasError
from finsent.monitoring.entities import TickerExtractor
from finsent.monitoring.headlines import DEAD_LETTERS
from finsent.monitoring.headlines import Headline
from finsent.monitoring.headlines import ReadHeadlines
from finsent.monitoring.outputs import ChangelogError
from finsent.monitoring.outputs import compact_jsonl
from finsent.monitoring.outputs import is_topic_key
from finsent.monitoring.outputs import MARKET
from finsent.monitoring.outputs import read_changelog
from finsent.monitoring.outputs import topic_key
from finsent.monitoring.outputs import write_windows_parquet
from finsent.monitoring.scoring import ScoredHeadline
from finsent.monitoring.sinks import AppendJsonl
from finsent.monitoring.sinks import PostToWebhook
from finsent.monitoring.windows import SentimentCombineFn
from finsent.monitoring.windows import WindowSentiment
from finsent import configs
from finsent.serving.server.process import free_port

T0 = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.timezone.utc)


def _at(minutes: float) -> float:
  return T0.timestamp() + minutes * 60


def _iso(minutes: float) -> str:
  return datetime.datetime.fromtimestamp(
      _at(minutes), datetime.timezone.utc).isoformat().replace('+00:00', 'Z')


def _scored(minutes, label, tickers=('ACME',), headline_id=None, topic=None):
  probabilities = dict.fromkeys(('negative', 'neutral', 'positive'), 0.1)
  probabilities[label] = 0.8
  headline_id = headline_id or f'h{minutes}-{label}'
  return ScoredHeadline(
      Headline(headline_id, f'{label} news', _iso(minutes), _at(minutes),
               f'test:{headline_id}'), tuple(tickers), label, probabilities,
      topic)


# --- Reading: every line is a headline or a dead letter naming file:line ---

def test_read_headlines_keeps_good_lines_and_names_bad_ones(write):
  jsonl = write('feed.jsonl', '\n'.join([
      json.dumps({'id': 'a', 'text': '$ACME jumps', 'published_at':
                  '2026-03-02T10:00:00Z', 'label': 'positive'}),
      'not json',
      json.dumps({'text': '', 'published_at': '2026-03-02T10:00:00Z'}),
      json.dumps({'text': 'no time'}),
      json.dumps({'text': 'naive', 'published_at': '2026-03-02T10:00:00'}),
      json.dumps(['a', 'list']),
      '',
      json.dumps({'text': 'Acme falls', 'published_at':
                  '2026-03-02T11:00:00+01:00', 'source': 'wire'}),
  ]) + '\n')
  csv_path = write('feed.csv', 'text,published_at,source\n'
                   'Acme rises,2026-03-02T10:05:00Z,wire\n'
                   'too,many,fields,here\n'
                   'Acme bad time,yesterday,wire\n')
  with TestPipeline() as p:
    read = p | beam.Create([jsonl, csv_path]) | ReadHeadlines()
    assert_that(read.headlines | 'Id' >> beam.Map(
        lambda h: (h.id, h.timestamp, h.source, dict(h.extra))), equal_to([
            ('a', _at(0), None, {'label': 'positive'}),
            ('feed.jsonl:8', _at(0), 'wire', {}),
            ('feed.csv:2', _at(5), 'wire', {})]), label='headlines')
    assert_that(read[DEAD_LETTERS] | 'Where' >> beam.Map(
        lambda d: (d.stage, d.where, d.reason.split(':')[0].split(' (')[0])),
        equal_to([
            ('parse', 'feed.jsonl:2', 'not JSON'),
            ('parse', 'feed.jsonl:3', "text must be a non-empty string, got ''"),
            ('parse', 'feed.jsonl:4',
             'published_at must be an ISO-8601 time, got None'),
            ('parse', 'feed.jsonl:5', "published_at '2026-03-02T10"),
            ('parse', 'feed.jsonl:6', 'expected a JSON object, got list'),
            ('parse', 'feed.csv:3', '4 fields, the header has 3'),
            ('parse', 'feed.csv:4',
             "published_at 'yesterday' is not an ISO-8601 time"),
        ]), label='dead letters')


def test_csv_without_the_needed_columns_is_one_dead_letter(write):
  path = write('bad.csv', 'headline,date\nAcme,2026-03-02\n')
  with TestPipeline() as p:
    read = p | beam.Create([path]) | ReadHeadlines()
    assert_that(read.headlines, equal_to([]), label='none')
    assert_that(read[DEAD_LETTERS] | beam.Map(lambda d: (d.where, d.reason)),
                equal_to([('bad.csv:1', 'the CSV header lacks published_at, '
                           'text; no line of the file was read')]))


# --- Tickers ---

def test_tickers_from_cashtags_and_aliases():
  extract = TickerExtractor({'Apple': 'AAPL', 'Bank of America': 'BAC',
                             'America': 'AMER'})
  assert extract('$aapl and $MSFT up; Apple\'s chips') == ('AAPL', 'MSFT')
  assert extract('Bank of America beats') == ('BAC',)
  assert extract('Berkshire $BRK.B, costs $5 more, a$XYZ') == ('BRK.B',)
  assert extract('Stocks drift lower') == ()
  assert extract('Pineapple prices') == ()


def test_bundled_aliases_load():
  extract = TickerExtractor.from_csv(configs.TICKER_ALIASES)
  assert extract('Solara Energy withdraws guidance') == ('SOLR',)


@pytest.mark.parametrize('content, message', [
    ('company,symbol\nApple,AAPL\n', ':1: the header must be name,ticker'),
    ('name,ticker\nApple,aapl\n', ":2: 'aapl' is not a ticker"),
    ('name,ticker\nApple,AAPL\nApple,APPL\n', ":3: 'Apple' is already AAPL"),
    ('name,ticker\nApple\n', ":2: expected name,ticker, got ['Apple']"),
])
def test_bad_alias_file_says_where(write, content, message):
  with pytest.raises(AliasError, match=message.replace('[', r'\[')
                     .replace(']', r'\]')):
    TickerExtractor.from_csv(write('aliases.csv', content))


# --- Windows: event time, sliding, per key, late data ---

def _window_ids(records):
  return sorted((r['key'], r['window_end'], r['count'], r['negative'],
                 r['pane']) for r in records)


def test_a_headline_counts_in_every_sliding_window_that_covers_it():
  with TestPipeline() as p:
    records = (p | beam.Create([_scored(7, 'negative')])
               | WindowSentiment(3600, 300, 0, 3))
    # 10:07 lies in the 12 one-hour windows ending 10:10, 10:15 .. 11:05,
    # for the market and for ACME.
    ends = [_iso(10 + 5 * i) for i in range(12)]
    assert_that(records | beam.Map(lambda r: (r['key'], r['window_end'])),
                equal_to([(k, e) for k in (MARKET, 'ACME') for e in ends]))


@pytest.mark.parametrize('bounded', [False, True])
def test_a_headline_counts_for_its_topic_too(bounded):
  """With a topic head, a headline's windows are the market's, its
  tickers' and its topic's."""
  with TestPipeline() as p:
    records = (p | beam.Create([_scored(7, 'negative', topic='Macro'),
                                _scored(8, 'neutral', tickers=(),
                                        topic='Macro')])
               | WindowSentiment(600, 600, 0, 3, bounded=bounded)
               | beam.WindowInto(beam_window.GlobalWindows()))
    assert_that(records | beam.Map(lambda r: (r['key'], r['count'],
                                              r['negative'])),
                equal_to([(MARKET, 2, 1), ('ACME', 1, 1),
                          (topic_key('Macro'), 2, 1)]))
  assert topic_key('Macro') == 'topic:Macro' and is_topic_key('topic:Macro')
  assert not is_topic_key('ACME') and not is_topic_key(MARKET)


def test_bounded_input_gets_the_same_windows_as_a_stream():
  """Files read once key by Beam's windows instead of windowing by them
  (WindowSentiment's docstring): the same records."""
  rng = random.Random(5)
  # Some exactly on window starts (every 10 minutes).
  minutes = [rng.uniform(0, 90) for _ in range(56)] + [0, 10, 40, 80]
  scored = [_scored(m, rng.choice(('negative', 'neutral', 'positive')),
                    tickers=rng.choice(((), ('ACME',), ('ACME', 'BOLT'))),
                    headline_id=f'h{i}') for i, m in enumerate(minutes)]

  def summary(records, name):
    return (records
            | f'Global{name}' >> beam.WindowInto(beam_window.GlobalWindows())
            | f'Summary{name}' >> beam.Map(lambda r: (
        r['id'], r['window_start'], r['count'], r['negative'], r['neutral'],
        r['positive'], r['mean_score'], r['pane'],
        [h['id'] for h in r['top_headlines']])))
  with TestPipeline() as p:
    headlines = p | beam.Create(scored)
    bounded = headlines | 'Bounded' >> WindowSentiment(1800, 600, 0, 3,
                                                       bounded=True)
    windowed = headlines | 'Windowed' >> WindowSentiment(1800, 600, 0, 3)
    collected = ((summary(bounded, 'B') | 'B' >> beam.Map(lambda r: ('b', r)),
                  summary(windowed, 'W') | 'W' >> beam.Map(lambda r: ('w', r)))
                 | beam.Flatten() | beam.GroupByKey()
                 | beam.Map(lambda kv: (kv[0], sorted(kv[1]))))
    assert_that(collected | beam.combiners.ToList() | beam.Map(
        lambda pairs: (len(dict(pairs)['b']) > 20,
                       dict(pairs)['b'] == dict(pairs)['w'])),
                equal_to([(True, True)]))


def test_late_headline_updates_its_window_and_too_late_is_not_counted():
  stream = (TestStream()
            .add_elements([beam_window.TimestampedValue(
                _scored(1, 'positive'), _at(1))])
            .advance_watermark_to(_at(12))  # fires [0, 10)
            # 2 minutes past the window, within 5 minutes allowed lateness.
            .add_elements([beam_window.TimestampedValue(
                _scored(2, 'negative'), _at(2))])
            .advance_watermark_to(_at(30))  # beyond lateness of [0, 10)
            .add_elements([beam_window.TimestampedValue(
                _scored(3, 'negative', headline_id='too-late'), _at(3))])
            .advance_watermark_to_infinity())
  options = PipelineOptions(streaming=True)
  with TestPipeline(options=options) as p:
    records = (p | stream | WindowSentiment(600, 600, 300, 3)
               | beam.Filter(lambda r: r['key'] == MARKET))
    assert_that(records | beam.Map(lambda r: (
        r['window_end'], r['count'], r['negative'], r['pane'],
        r['pane_index'])), equal_to([
            (_iso(10), 1, 0, 'ON_TIME', 0),
            (_iso(10), 2, 1, 'LATE', 1)]))


def test_window_aggregate_by_hand():
  fn = SentimentCombineFn(top_n=2)
  parts = []
  for group in ([('negative', 1), ('positive', 2)],
                [('negative', 3), ('neutral', 4), ('negative', 5)]):
    accumulator = fn.create_accumulator()
    for label, minute in group:
      accumulator = fn.add_input(accumulator, _scored(minute, label))
    parts.append(accumulator)
  result = fn.extract_output(fn.merge_accumulators(parts))
  # scores: negative -0.7 x3, positive +0.7, neutral 0 -> mean -1.4/5.
  assert {k: result[k] for k in ('count', 'negative', 'neutral', 'positive',
                                 'share_negative', 'share_positive',
                                 'mean_score')} == {
      'count': 5, 'negative': 3, 'neutral': 1, 'positive': 1,
      'share_negative': 0.6, 'share_positive': 0.2, 'mean_score': -0.28}
  assert [h['p_negative'] for h in result['top_headlines']] == [0.8, 0.8]
  assert {h['predicted'] for h in result['top_headlines']} == {'negative'}


# --- Shocks: baseline, threshold, order ---

def test_robust_z_by_hand():
  baseline = [0.2, 0.3, 0.3, 0.4, 0.5]
  # median 0.3; |deviations| 0.1 0 0 0.1 0.2 -> MAD 0.1 -> scale 0.14826.
  z, median, scale = shocks.robust_z(0.9, baseline, 0.05, 'share_negative')
  assert (median, scale) == (0.3, pytest.approx(0.14826))
  assert z == pytest.approx(0.6 / 0.14826)
  # The floor wins over a smaller spread.
  assert shocks.robust_z(0.9, baseline, 0.2, 'share_negative')[0] == \
      pytest.approx(3.0)
  # mean_score alerts on a fall.
  # median 0, MAD 0.1: z = (0 - -0.6) / 0.14826.
  assert shocks.robust_z(-0.6, [0.0, 0.1, -0.1], 0.1, 'mean_score')[0] == \
      pytest.approx(0.6 / 0.14826)


SHOCK = configs.ShockConfig(z_threshold=3.0, min_count=5, min_baseline_count=5,
                            baseline_seconds=3600, min_baseline_windows=3,
                            min_scale=0.1, top_headlines=2)


def _record(key, end_minutes, count, negative, window_minutes=10):
  return {'id': f'{key}/{_iso(end_minutes)}', 'key': key,
          'window_start': _iso(end_minutes - window_minutes),
          'window_end': _iso(end_minutes), 'count': count,
          'negative': negative, 'share_negative': round(negative / count, 4),
          'mean_score': 0.0, 'pane': 'ON_TIME', 'pane_index': 0,
          'top_headlines': []}


def _past(end_minutes, count, negative):
  """A window as a key's history keeps it."""
  return shocks.Past.of(_record('ACME', end_minutes, count, negative))


def test_judge_window_uses_only_earlier_non_overlapping_windows():
  # Windows of 10 min ending every 10 min from 10:10; share 0.2 .. 0.4.
  history = [_past(m, 10, n) for m, n in
             ((10, 2), (20, 3), (30, 4), (40, 3), (50, 9))]
  shock = _record('ACME', 60, 10, 9)  # starts 10:50: 10:50 ends at its start
  alert = shocks.judge_window(shock, history, SHOCK)
  # Baseline = windows ending in (9:50, 10:50]: all five, median 0.3,
  # MAD 0.1 -> scale 0.14826; z = (0.9 - 0.3) / 0.14826.
  assert alert['baseline_windows'] == 5
  assert alert['z_score'] == round(0.6 / 0.14826, 2)
  assert (alert['metric'], alert['baseline_median'], alert['value']) == (
      'share_negative', 0.3, 0.9)
  # The count test waits for a baseline that reaches back its hour: the
  # oldest window here ends 10:10, after 9:50 + one window's 10 minutes.
  assert alert['tests_fired'] == ['share_negative']
  assert [t['metric'] for t in alert['tests']] == ['share_negative']
  # The window ending 10:50 overlaps one starting 10:45: not in its baseline.
  overlapping = _record('ACME', 60, 10, 9, window_minutes=15)
  assert shocks.judge_window(overlapping, history, SHOCK)['baseline_windows'] \
      == 4
  assert shocks.judge_window(_record('ACME', 60, 4, 4), history, SHOCK) is None
  assert shocks.judge_window(shock, history[:2], SHOCK) is None


def test_shock_is_found_whatever_order_the_windows_arrive_in():
  flat = [_record('ACME', 10 * i, 10, 3) for i in range(1, 9)]
  flat[2] = _record('ACME', 30, 10, 2)
  flat[5] = _record('ACME', 60, 10, 4)
  shocked = flat + [_record('ACME', 90, 10, 9)]
  market = [_record(MARKET, 10 * i, 20, 6) for i in range(1, 10)]
  records = shocked + market
  random.Random(1).shuffle(records)
  # ACME 10:50 .. 11:20 shares before 11:30 (windows ending in (10:20,
  # 11:20]): 0.3 0.3 0.4 0.3 0.3 0.3 -> median 0.3, MAD 0 -> floor 0.1:
  # z = (0.9 - 0.3) / 0.1 = 6. The market is flat: no alert.
  _assert_alerts(records, [('ACME', _iso(90), 6.0, 6)])


def test_flat_stream_raises_no_alert():
  rng = random.Random(3)
  records = [_record(key, 10 * i, 20, rng.randint(4, 8))
             for key in ('ACME', MARKET) for i in range(1, 40)]
  _assert_alerts(records, [])


def _at_window_end(record):
  """A window record stamped as Beam stamps a window's output: its end."""
  end = datetime.datetime.fromisoformat(
      record['window_end'].replace('Z', '+00:00')).timestamp()
  return beam_window.TimestampedValue(record, end - 1e-6)


def _assert_alerts(records, expected):
  """DetectShocks, on a stream (state and timers) and on bounded input
  (grouped), finds exactly `expected`: (key, window end, z, baseline
  windows)."""
  for bounded in (False, True):
    _assert_alerts_of(records, expected, bounded)


def _assert_alerts_of(records, expected, bounded):
  with TestPipeline() as p:
    alerts = (p | beam.Create(records) | beam.Map(_at_window_end)
              | shocks.DetectShocks(SHOCK, 600, bounded=bounded)
              | beam.Map(lambda a: (a['key'], a['window_end'], a['z_score'],
                                    a['baseline_windows'])))
    assert_that(alerts, equal_to(expected))


WINDOW_70 = f'ACME/{_iso(70)}'


@pytest.mark.parametrize('on_time, late, expected', [
    # Few headlines on time (no alert), then a late pane that alerts.
    ((4, 4), (12, 11), [(WINDOW_70, 12, 'LATE', False)]),
    # An alert on time; its late pane, with 20 more headlines none of them
    # negative, does not alert: a retraction follows.
    ((10, 9), (30, 9), [(WINDOW_70, 10, 'ON_TIME', False),
                        (WINDOW_70, None, None, True)]),
])
def test_a_late_pane_is_judged_again(on_time, late, expected):
  """Window records arriving as a stream: ACME's windows at a share of 0.3,
  then the window ending 11:10 on time and as a late pane."""
  base = [_record('ACME', 10 * i, 10, 3) for i in range(1, 7)]
  late_record = dict(_record('ACME', 70, *late), pane='LATE', pane_index=1)
  stream = (TestStream()
            .add_elements([_at_window_end(r) for r in
                           base + [_record('ACME', 70, *on_time)]])
            .advance_watermark_to(_at(75))
            .add_elements([_at_window_end(late_record)])
            .advance_watermark_to_infinity())
  with TestPipeline(options=PipelineOptions(streaming=True)) as p:
    alerts = (p | stream | shocks.DetectShocks(SHOCK, 600)
              | beam.Map(lambda a: (a['alert_id'], a.get('count'),
                                    a.get('pane'), 'retracted' in a)))
    assert_that(alerts, equal_to(expected))


# The count test: a window's negatives against the baseline's rate.

COUNT = dataclasses.replace(SHOCK, metric='negative_count')


def _tail_by_hand(negatives, rate):
  """P(X >= negatives), X ~ Poisson(rate), from its terms."""
  return 1 - sum(math.exp(-rate) * rate ** i / math.factorial(i)
                 for i in range(negatives))


def _z_by_hand(tail):
  return -statistics.NormalDist().inv_cdf(tail)


# ACME's windows ending 10:10 .. 11:00, 10 headlines each: 2 3 4 3 3 3
# negatives, a mean of 3 a window.
BASELINE = [_past(10 * i, 10, n) for i, n in enumerate((2, 3, 4, 3, 3, 3), 1)]


def test_count_test_by_hand():
  # 11:00 .. 11:10: its baseline ends in (10:00, 11:00], and its oldest
  # window, ending 10:10, reaches back to the baseline's start.
  alert = shocks.judge_window(_record('ACME', 70, 16, 14), BASELINE, COUNT)
  tail = _tail_by_hand(14, 3.0)
  assert tail == pytest.approx(3.4e-6, rel=0.01)
  assert alert['tests_fired'] == ['negative_count']
  assert (alert['metric'], alert['value'], alert['baseline_rate'],
          alert['baseline_median'], alert['count']) == (
              'negative_count', 14, 3.0, 3, 16)
  # Rounded to 3 significant digits.
  assert alert['tail_probability'] == pytest.approx(tail, rel=5e-3)
  assert alert['max_tail_probability'] == 1e-5
  assert alert['z_score'] == pytest.approx(_z_by_hand(tail), abs=0.01)
  assert alert['z_threshold'] == pytest.approx(_z_by_hand(1e-5), abs=0.01)
  assert alert['tests'] == [{k: v for k, v in alert.items() if k in (
      'metric', 'value', 'baseline_rate', 'baseline_median',
      'tail_probability', 'max_tail_probability', 'z_score',
      'z_threshold')} | {'fired': True}]
  # 11 of 16: a tail of 2.9e-4 at a rate of 3, no shock.
  assert _tail_by_hand(11, 3.0) > 1e-5
  assert shocks.judge_window(_record('ACME', 70, 16, 11), BASELINE,
                             COUNT) is None


def test_a_ticker_without_negatives_needs_nine_to_alert():
  """Its rate is floored at min_rate, 1 a window: P(X >= 8) = 1.02e-5 is
  above max_tail_probability, P(X >= 9) = 1.1e-6 below."""
  quiet = [_past(10 * i, 10, 0) for i in range(1, 7)]
  assert shocks.least_alerting_negatives(COUNT) == 9
  for negatives in (1, 8):
    assert shocks.judge_window(_record('ACME', 70, 10, negatives), quiet,
                               COUNT) is None
  alert = shocks.judge_window(_record('ACME', 70, 10, 9), quiet, COUNT)
  assert (alert['baseline_rate'], alert['baseline_median']) == (1.0, 0)
  assert alert['tail_probability'] == pytest.approx(_tail_by_hand(9, 1.0),
                                                    rel=5e-3)


def test_the_count_test_waits_for_a_baseline_reaching_back_its_span():
  """A key's first windows began before its first headline: a baseline
  that starts with them is judged by the share only."""
  # Windows ending 10:20 .. 11:00: the oldest ends more than one window's
  # 10 minutes after the baseline's start, 10:00.
  late_start = BASELINE[1:]
  shock = _record('ACME', 70, 16, 14)
  assert shocks.judge_window(shock, late_start, COUNT) is None
  alert = shocks.judge_window(shock, late_start, SHOCK)
  assert [t['metric'] for t in alert['tests']] == ['share_negative']
  assert shocks.judge_window(shock, BASELINE, COUNT) is not None


def test_the_market_has_no_count_test():
  """Every ticker's burst is also the market's: its alerts would repeat
  theirs (docs/monitoring.md)."""
  history = [shocks.Past.of(_record(MARKET, 10 * i, 10, 3))
             for i in range(1, 7)]
  burst = _record(MARKET, 70, 40, 14)  # a share of 0.35: no share alert
  assert shocks.judge_window(burst, history, COUNT) is None
  assert shocks.judge_window(burst, history, SHOCK) is None


def test_both_tests_fire_the_strongest_leads():
  alert = shocks.judge_window(_record('ACME', 70, 16, 14), BASELINE, SHOCK)
  # Share 0.875 against a median of 0.3 and the floor's scale 0.1: z 5.75;
  # the count's z is 4.5.
  assert alert['tests_fired'] == ['negative_count', 'share_negative']
  share = alert['tests'][1]
  assert (share['metric'], share['z_score'], share['fired']) == (
      'share_negative', 5.75, True)
  assert alert['tests'][0]['z_score'] == pytest.approx(
      _z_by_hand(_tail_by_hand(14, 3.0)), abs=0.01)
  assert (alert['metric'], alert['z_score'], alert['baseline_scale']) == (
      'share_negative', 5.75, 0.1)


@pytest.mark.parametrize('bounded', [False, True])
def test_count_shock_is_found_whatever_order_the_windows_arrive_in(bounded):
  acme = [_record('ACME', 10 * i, 10, n)
          for i, n in enumerate((2, 3, 4, 3, 3, 3, 3), 1)]
  # 11:10 .. 11:20: 20 headlines, 14 negative; its baseline, 10:20 ..
  # 11:10, has a mean of 19/6 negatives a window.
  records = acme + [_record('ACME', 80, 20, 14)] + [
      _record(MARKET, 10 * i, 30, 9) for i in range(1, 9)]
  random.Random(2).shuffle(records)
  z = round(_z_by_hand(_tail_by_hand(14, 19 / 6)), 2)
  with TestPipeline() as p:
    alerts = (p | beam.Create(records) | beam.Map(_at_window_end)
              | shocks.DetectShocks(COUNT, 600, bounded=bounded)
              | beam.Map(lambda a: (a['key'], a['window_end'],
                                    tuple(a['tests_fired']), a['value'],
                                    a['baseline_rate'], a['z_score'])))
    assert_that(alerts, equal_to([
        ('ACME', _iso(80), ('negative_count',), 14, round(19 / 6, 4), z)]))


@pytest.mark.parametrize('bounded', [False, True])
def test_a_burst_of_negative_news_in_one_topic_alerts_for_that_topic(bounded):
  """A topic is judged as a ticker is: its share and its count of
  negatives against its own baseline."""
  fed, macro = topic_key('Fed | Central Banks'), topic_key('Macro')
  steady = (2, 3, 4, 3, 3, 3, 3)
  records = ([_record(key, 10 * i, 10, n) for key in (fed, macro)
              for i, n in enumerate(steady, 1)] +
             [_record(fed, 80, 20, 14), _record(macro, 80, 10, 3)])
  random.Random(3).shuffle(records)
  with TestPipeline() as p:
    alerts = (p | beam.Create(records) | beam.Map(_at_window_end)
              | shocks.DetectShocks(COUNT, 600, bounded=bounded)
              | beam.Map(lambda a: (a['key'], a['window_end'], a['value'])))
    assert_that(alerts, equal_to([(fed, _iso(80), 14)]))


@pytest.mark.parametrize('bounded', [False, True])
def test_a_steady_poisson_flow_raises_no_count_alert(bounded):
  # 4 negatives a window on average, Poisson by construction, 40 windows
  # of each of three tickers: the smallest tail is 0.007 (BOLT's 7 negatives
  # against a rate of 2.2).
  rng = numpy.random.default_rng(5)
  records = [_record(key, 10 * i, 20, int(n))
             for key in ('ACME', 'BOLT', 'CRUX')
             for i, n in enumerate(rng.poisson(4, 40), 1)]
  with TestPipeline() as p:
    alerts = (p | beam.Create(records) | beam.Map(_at_window_end)
              | shocks.DetectShocks(COUNT, 600, bounded=bounded))
    assert_that(alerts, equal_to([]))


@pytest.mark.parametrize('bounded', [False, True])
def test_a_window_too_small_for_a_baseline_can_still_alert(bounded):
  """With a low floor the count test alerts on fewer headlines than a
  baseline window needs; such windows reach it."""
  config = dataclasses.replace(COUNT, min_rate=0.03, min_count=20)
  assert shocks.least_alerting_negatives(config) == 3
  quiet = [_record('ACME', 10 * i, 6, 0) for i in range(1, 7)]
  with TestPipeline() as p:
    alerts = (p | beam.Create(quiet + [_record('ACME', 70, 4, 4)])
              | beam.Map(_at_window_end)
              | shocks.DetectShocks(config, 600, bounded=bounded)
              | beam.Map(lambda a: (a['alert_id'], a['value'],
                                    a['baseline_rate'])))
    assert_that(alerts, equal_to([(f'ACME/{_iso(70)}', 4, 0.03)]))


def test_a_late_pane_turns_a_window_into_a_count_alert():
  """On a stream: 11:00 .. 11:10 on time with 4 negatives of 10, then as a
  late pane with 16 of 22."""
  on_time = _record('ACME', 70, 10, 4)
  late = dict(_record('ACME', 70, 22, 16), pane='LATE', pane_index=1)
  stream = (TestStream()
            .add_elements([_at_window_end(r) for r in
                           [_record('ACME', 10 * i, 10, n) for i, n in
                            enumerate((2, 3, 4, 3, 3, 3), 1)] + [on_time]])
            .advance_watermark_to(_at(75))
            .add_elements([_at_window_end(late)])
            .advance_watermark_to_infinity())
  with TestPipeline(options=PipelineOptions(streaming=True)) as p:
    alerts = (p | stream | shocks.DetectShocks(COUNT, 600)
              | beam.Map(lambda a: (a['alert_id'], a['pane'], a['value'],
                                    a['tests_fired'])))
    assert_that(alerts, equal_to([
        (f'ACME/{_iso(70)}', 'LATE', 16, ['negative_count'])]))


@pytest.mark.parametrize('changes, message', [
    ({'metric': 'volume'}, "shock metric must be one of negative_count+"
     "share_negative, negative_count+mean_score, negative_count, "
     "share_negative, mean_score, got 'volume'"),
    ({'max_tail_probability': 0.0},
     'max_tail_probability must be above 0 and below 1, got 0.0'),
    ({'max_tail_probability': 1.0},
     'max_tail_probability must be above 0 and below 1, got 1.0'),
    ({'max_tail_probability': float('nan')},
     'max_tail_probability must be above 0 and below 1, got nan'),
    ({'min_rate': 0.0}, 'min_rate must be a positive number, got 0.0'),
    ({'min_rate': float('inf')}, 'min_rate must be a positive number, got inf'),
])
def test_a_shock_config_the_detector_cannot_use_is_named(changes, message):
  with pytest.raises(ValueError) as error:
    shocks.DetectShocks(dataclasses.replace(SHOCK, **changes), 600)
  assert str(error.value) == message


# --- Sinks: changelogs keyed by id, compacted; the webhook ---

def test_appended_changelog_compacts_to_the_last_record_per_id(tmp_path):
  path = str(tmp_path / 'windows.jsonl')
  first = [{'id': f'k/{i}', 'v': i} for i in range(5)]
  update = [{'id': 'k/2', 'v': 20}]
  for records in (first, update, first[3:]):  # a late pane, a re-read
    with TestPipeline() as p:
      _ = p | beam.Create(records) | beam.ParDo(AppendJsonl(path))
  assert len(open(path).readlines()) == 8
  assert compact_jsonl(path, 'id', lambda r: r['id']) == 5
  assert [r['v'] for _, r in read_changelog(path, 'id').values()] == \
      [0, 1, 20, 3, 4]
  before = open(path).read()
  assert compact_jsonl(path, 'id', lambda r: r['id']) == 5
  assert open(path).read() == before


def test_a_retracted_record_leaves_the_compacted_changelog(tmp_path):
  path = str(tmp_path / 'alerts.jsonl')
  with open(path, 'w') as f:
    for record in ({'alert_id': 'A/1'}, {'alert_id': 'A/2'},
                   {'alert_id': 'A/1', 'retracted': True}):
      f.write(json.dumps(record) + '\n')
  assert list(read_changelog(path, 'alert_id')) == ['A/2']
  assert compact_jsonl(path, 'alert_id', lambda r: r['alert_id']) == 1
  assert open(path).read() == json.dumps({'alert_id': 'A/2'}) + '\n'


def test_a_watch_retracts_the_alert_of_a_window_written_again_without_one():
  windows = [_record('ACME', m, 10, 9) for m in (10, 20, 30, 40)]
  # 10: alerted before, alerts again; 20: alerted before, no alert now;
  # 30 and 40: no alert before (or one retracted already).
  alerts = [{'alert_id': windows[0]['id'], 'key': 'ACME'}]
  alerted_before = {windows[0]['id'], windows[1]['id']}
  with TestPipeline() as p:
    retracted = ((p | 'Windows' >> beam.Create(windows),
                  p | 'Alerts' >> beam.Create(alerts))
                 | watch.Retractions(alerted_before))
    assert_that(retracted, equal_to([{
        'alert_id': windows[1]['id'], 'key': 'ACME',
        'window_start': _iso(10), 'window_end': _iso(20),
        'retracted': True}]))


# --- A watched directory's state (monitoring/watch.py) ---

def test_file_ledger_lists_new_headline_files_oldest_first(tmp_path):
  feed, output = tmp_path / 'feed', tmp_path / 'out'
  os.makedirs(feed)
  os.makedirs(output)
  for i, name in enumerate(('b.jsonl', 'a.csv', '.c.jsonl.writing',
                            'd.jsonl.tmp', 'e.JSON')):
    (feed / name).write_text('{}\n')
    os.utime(feed / name, (1000 + i, 1000 + i))
  pattern = [os.path.join(feed, '*')]
  ledger = watch.FileLedger(str(output))
  assert ledger.watermark is None
  assert [os.path.basename(p) for p in ledger.new_files(pattern)] == [
      'b.jsonl', 'a.csv', 'e.JSON']
  ledger.record([str(feed / 'b.jsonl')], _at(7.5))
  again = watch.FileLedger(str(output))
  assert again.watermark == _at(7.5)
  assert [os.path.basename(p) for p in again.new_files(pattern)] == [
      'a.csv', 'e.JSON']


def test_a_torn_last_line_is_cut(tmp_path):
  path = tmp_path / 'scored.jsonl'
  long_line = json.dumps({'id': 'x' * 70000}) + '\n'  # beyond one block
  for content, cut in ((long_line + '{"id": "to', 10), (long_line, 0),
                       ('{"id": "to', 10), ('', 0)):
    path.write_text(content)
    assert watch.cut_torn_tail(str(path)) == cut
    assert path.read_text() == content[:len(content) - cut]
  assert watch.cut_torn_tail(str(tmp_path / 'missing.jsonl')) == 0


def test_a_scored_headline_survives_its_record():
  scored = _scored(3.25, 'negative', tickers=('ACME', 'BOLT'))
  scored = dataclasses.replace(scored, headline=dataclasses.replace(
      scored.headline, extra=(('label', 'negative'), ('tags', ['a', 'b']))))
  assert ScoredHeadline.from_record(
      json.loads(json.dumps(scored.to_record()))) == scored
  with_topic = dataclasses.replace(scored, topic='Earnings')
  assert ScoredHeadline.from_record(
      json.loads(json.dumps(with_topic.to_record()))) == with_topic
  assert with_topic.to_dict()['topic'] == 'Earnings'
  assert 'topic' not in scored.to_dict()
  # A store written before topics were served.
  old = scored.to_record()
  del old['topic']
  assert ScoredHeadline.from_record(old) == scored


def test_scored_headlines_read_back_from_the_store_one_per_id(tmp_path):
  path = str(tmp_path / 'scored.jsonl')
  # Line and paragraph separators inside a headline are not line ends.
  odd = dataclasses.replace(_scored(1, 'negative', headline_id='odd'),
                            headline=dataclasses.replace(
                                _scored(1, 'negative').headline, id='odd',
                                text='Acme\u2028falls\x85again'))
  first = [_scored(m, 'neutral', headline_id=f'h{m}') for m in (1, 2, 3)]
  again = _scored(2, 'positive', headline_id='h2')  # scored once more
  with TestPipeline() as p:
    _ = (p | beam.Create(first + [odd])
         | beam.Map(ScoredHeadline.to_record) | beam.ParDo(AppendJsonl(path)))
  offset = os.path.getsize(path)
  with open(path, 'a', encoding='utf-8') as f:
    f.write(json.dumps(again.to_record(), ensure_ascii=False) + '\n')
  stored = watch.read_scored(path)
  assert sorted(s.headline.id for s in stored) == ['h1', 'h2', 'h3', 'odd']
  assert {s.headline.id: s for s in stored}['h2'] == again
  assert {s.headline.id: s for s in stored}['odd'] == odd
  assert sorted(s.headline.id for s in watch.read_scored(path, since=_at(2))) == [
      'h2', 'h3']
  assert watch.read_scored(path, offset=offset) == [again]


def test_a_headline_is_too_late_once_all_its_windows_are_past_lateness():
  # Half-hour windows every 10 minutes: a headline at 10:07 is in windows
  # ending 10:10 .. 10:30; past lateness once that one ends before
  # watermark - lateness.
  headline = _scored(7, 'negative').headline
  assert watch.too_late(headline, None, 1800, 600) is headline
  assert watch.too_late(headline, _at(30), 1800, 600) is headline
  dead = watch.too_late(headline, _at(30.5), 1800, 600)
  assert dead.tag == DEAD_LETTERS
  assert (dead.value.stage, dead.value.where) == ('late', 'test:h7-negative')
  assert 'last window ended 2026-03-02T10:30:00Z' in dead.value.reason


def test_a_window_record_parquet_cannot_hold_is_named(tmp_path):
  path = str(tmp_path / 'windows.jsonl')
  with open(path, 'w') as f:
    f.write(json.dumps({'id': 'ACME/t', 'key': 'ACME'}) + '\n')
  with pytest.raises(ChangelogError, match=r'windows.jsonl:1: a window record '
                     r"without \['window_start'"):
    write_windows_parquet(path, str(tmp_path / 'windows.parquet'))
  assert sorted(os.listdir(tmp_path)) == ['windows.jsonl']


class _Webhook(http.server.BaseHTTPRequestHandler):
  """Answers POSTs with the next of `statuses`; records the bodies."""
  statuses = []
  bodies = []

  def do_POST(self):
    self.bodies.append(json.loads(self.rfile.read(
        int(self.headers['Content-Length']))))
    self.send_response(self.statuses.pop(0) if self.statuses else 200)
    self.end_headers()

  def log_message(self, *args):
    pass


@pytest.fixture
def webhook():
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Webhook)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  _Webhook.statuses, _Webhook.bodies = [], []
  yield f'http://127.0.0.1:{server.server_port}/alerts', _Webhook
  server.shutdown()


def _assert_posted(url, alerts, dead_letters):
  """PostToWebhook gives exactly `dead_letters`: (stage, where, reason)."""
  with TestPipeline() as p:
    dead = (p | beam.Create(alerts)
            | beam.ParDo(PostToWebhook(url, 2.0, 2, backoff_seconds=0.01))
            | beam.Map(lambda d: (d.stage, d.where, d.reason)))
    assert_that(dead, equal_to(dead_letters))


def test_webhook_gets_each_alert_retrying_server_errors(webhook):
  url, handler = webhook
  handler.statuses = [503, 500]  # then 200
  _assert_posted(url, [{'alert_id': 'ACME/x', 'z_score': 5.0}], [])
  assert handler.bodies == [{'alert_id': 'ACME/x', 'z_score': 5.0}] * 3


def test_webhook_failures_become_dead_letters(webhook):
  url, handler = webhook
  handler.statuses = [400]
  _assert_posted(url, [{'alert_id': 'ACME/x'}],
                 [('webhook', 'ACME/x', f'{url}: HTTP 400: ')])
  assert len(handler.bodies) == 1  # a refusal is not retried
  down = f'http://127.0.0.1:{free_port()}/alerts'
  with TestPipeline() as p:
    dead = (p | beam.Create([{'alert_id': 'ACME/y'}])
            | beam.ParDo(PostToWebhook(down, 2.0, 1, backoff_seconds=0.01))
            | beam.Map(lambda d: (d.stage, d.where,
                                  d.reason.split(' ')[1].split('(')[0])))
    assert_that(dead, equal_to([('webhook', 'ACME/y', 'ConnectionError:')]))
