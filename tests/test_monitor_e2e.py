"""`finsent monitor` end to end on a replayed stream with an injected shock.

The model is a real one (the `exported_model` fixture: Transform on Beam, a
Keras model trained on HEADLINES, the pipeline's export), so the stream is
replayed from those headlines: the model knows them, and the windows'
counts follow from the replay. Scored in process with RunInference, and
through a real server on 127.0.0.1; and with the server down.
"""

import csv
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from pyarrow import parquet
import pytest

from finsent.commands import monitor
from finsent.commands import monitor_report
from finsent.commands import replay as replay_command
from finsent.components.atomic_pusher import publish_model
from finsent.monitoring.entities import TickerExtractor
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import CHANGELOGS
from finsent.monitoring.outputs import DEAD_LETTERS_FILE
from finsent.monitoring.outputs import FILES_READ_FILE
from finsent.monitoring.outputs import is_topic_key
from finsent.monitoring.outputs import MARKET
from finsent.monitoring.outputs import read_changelog
from finsent.monitoring.outputs import SCORED_FILE
from finsent.monitoring.outputs import SUMMARY_FILE
from finsent.monitoring.outputs import topic_key
from finsent.monitoring.outputs import WINDOW_SCHEMA
from finsent.monitoring.outputs import WINDOWS_FILE
from finsent.monitoring.outputs import WINDOWS_PARQUET_FILE
from finsent.monitoring import job
from finsent.monitoring import replay
from finsent import configs
from finsent.serving.server.process import free_port
from finsent.serving.server.process import ModelServerProcess
from tests.conftest import HEADLINES
from tests.conftest import TOPIC_SENTIMENT_HEADLINES

# 1,200 headlines over 6 hours, half with ACME's or BOLT's cashtag, a third
# of them negative; then 60 negative ones for ACME in 10 minutes at 4:30: a
# shock for ACME (about 25 headlines a half hour), not for the market
# (about 100).
REPLAY = configs.ReplayConfig(span_hours=6, tickers=('ACME', 'BOLT'),
                              ticker_share=0.5, shock_size=60,
                              shock_minutes=10)
# Half-hour windows every 10 minutes: fewer windows, a quicker test.
WINDOW_FLAGS = ('--window_seconds', '1800', '--period_seconds', '600')
MALFORMED_LINES = [
    'not json at all',
    json.dumps({'text': 'Acme shares plunge after profit warning'}),
]


@pytest.fixture(scope='module')
def stream(tmp_path_factory):
  """The replayed stream, two malformed lines at its end; and the rows."""
  from finsent.data.loaders import Record
  records = [Record(text, label) for text, label in HEADLINES * 200]
  rows = replay.replay(records, REPLAY, 'ACME')
  path = tmp_path_factory.mktemp('stream') / 'headlines.jsonl'
  with open(path, 'w', encoding='utf-8') as f:
    for row in rows:
      f.write(json.dumps(row) + '\n')
    for line in MALFORMED_LINES:
      f.write(line + '\n')
  return str(path), rows


def _monitor(stream_path, output_dir, *model_flags):
  code = monitor.main(['--input', stream_path, '--output', str(output_dir),
                   *model_flags, *WINDOW_FLAGS])
  assert code == 0
  with open(os.path.join(output_dir, SUMMARY_FILE)) as f:
    summary = json.load(f)
  return summary, {name: _records(os.path.join(output_dir, name))
                   for name in CHANGELOGS}


def _records(path):
  with open(path, encoding='utf-8') as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def in_process(exported_model, stream, tmp_path_factory):
  export_dir, _, _ = exported_model
  output_dir = tmp_path_factory.mktemp('in_process')
  summary, outputs = _monitor(stream[0], output_dir, '--saved_model',
                              export_dir)
  return output_dir, summary, outputs


def test_the_shock_alerts_for_its_ticker_and_window_only(in_process, stream):
  _, summary, outputs = in_process
  _, rows = stream
  alerts = outputs[ALERTS_FILE]
  assert alerts and {a['key'] for a in alerts} == {'ACME'}
  shock_times = sorted(r['published_at'] for r in rows if r['injected'])
  for alert in alerts:
    # Every alerting window holds part of the shock...
    assert alert['window_start'] <= shock_times[-1]
    assert alert['window_end'] > shock_times[0]
    # ... and quotes ACME's most negative headlines (the model gives the
    # injected ones and the stream's own copies of them the same score).
    quoted = alert['top_headlines']
    assert len(quoted) == configs.ShockConfig().top_headlines
    assert {(h['text'].split()[0], h['predicted']) for h in quoted} == {
        ('$ACME', 'negative')}
    assert alert['z_score'] >= configs.ShockConfig().z_threshold
    assert alert['count'] >= configs.ShockConfig().min_count
  assert summary['alerts'] == len(alerts)


def test_windows_count_every_headline_once_per_window(in_process, stream):
  _, summary, outputs = in_process
  _, rows = stream
  assert summary['headlines_scored'] == len(rows)
  windows = outputs[WINDOWS_FILE]
  # Half-hour windows every 10 minutes: each headline is in 3 windows of
  # the market and 3 of its ticker.
  by_key = {}
  for window in windows:
    by_key[window['key']] = by_key.get(window['key'], 0) + window['count']
  assert by_key['*'] == 3 * len(rows)
  for ticker in ('ACME', 'BOLT'):
    assert by_key[ticker] == 3 * sum(
        r['text'].startswith(f'${ticker} ') for r in rows)
  # The model knows the replayed headlines: the windows count their labels.
  market = {w['window_end']: w for w in windows if w['key'] == '*'}
  assert sum(w['negative'] for w in market.values()) == 3 * sum(
      r['label'] == 'negative' for r in rows)
  assert all(w['pane'] == 'ON_TIME' for w in windows)


def test_windows_are_also_a_parquet_table(in_process):
  output_dir, _, outputs = in_process
  table = parquet.read_table(os.path.join(output_dir, WINDOWS_PARQUET_FILE))
  assert table.schema == WINDOW_SCHEMA
  assert table.to_pylist() == [
      {name: window[name] for name in WINDOW_SCHEMA.names}
      for window in outputs[WINDOWS_FILE]]


def test_malformed_lines_are_dead_letters_naming_the_line(in_process, stream):
  _, summary, outputs = in_process
  path, rows = stream
  name = os.path.basename(path)
  dead = outputs[DEAD_LETTERS_FILE]
  assert [(d['stage'], d['where']) for d in dead] == [
      ('parse', f'{name}:{len(rows) + 1}'), ('parse', f'{name}:{len(rows) + 2}')]
  assert dead[0]['reason'].startswith('not JSON')
  assert dead[1]['reason'].startswith('published_at must be an ISO-8601')
  assert summary['dead_letters'] == 2


def test_running_again_into_the_same_output_changes_nothing(
    in_process, stream, exported_model):
  output_dir, _, outputs = in_process
  export_dir, _, _ = exported_model
  parquet_before = (output_dir / WINDOWS_PARQUET_FILE).read_bytes()
  _, again = _monitor(stream[0], output_dir, '--saved_model', export_dir)
  assert again == outputs
  assert (output_dir / WINDOWS_PARQUET_FILE).read_bytes() == parquet_before


def test_through_the_server_the_same_windows_and_alerts(
    in_process, stream, exported_model, tmp_path):
  export_dir, _, _ = exported_model
  _, _, expected = in_process
  publish_model(export_dir, str(tmp_path / 'models' / 'sentiment'))
  with ModelServerProcess(
      '--model_name=sentiment',
      f'--model_base_path={tmp_path / "models" / "sentiment"}') as server:
    summary, outputs = _monitor(
        stream[0], tmp_path / 'served', '--model_url',
        f'127.0.0.1:{server.rest_port}')
  assert summary['model'].startswith('rest://127.0.0.1:')

  def counts(records):
    return [(r['id'], r['count'], r['negative'], r['neutral'], r['positive'])
            for r in records]
  assert counts(outputs[WINDOWS_FILE]) == counts(
      expected[WINDOWS_FILE])
  assert [a['alert_id'] for a in outputs[ALERTS_FILE]] == [
      a['alert_id'] for a in expected[ALERTS_FILE]]


def test_server_down_every_headline_is_a_dead_letter(stream, tmp_path):
  path, rows = stream
  summary, outputs = _monitor(path, tmp_path, '--model_url',
                              f'127.0.0.1:{free_port()}')
  dead = outputs[DEAD_LETTERS_FILE]
  scored = [d for d in dead if d['stage'] == 'score']
  assert len(scored) == len(rows)
  assert {d['record']['id'] for d in scored} == {r['id'] for r in rows}
  assert all('gave up after 4 attempts' in d['reason'] for d in scored)
  assert summary['headlines_scored'] == 0
  assert outputs[WINDOWS_FILE] == [] == outputs[ALERTS_FILE]


# --- Issue 23's replay: a shock for one of four tickers ---

# `finsent replay --tickers ACME,BOLT,CRUX,ZZZQ --shock ZZZQ` (or
# `--no_shock`) with ReplayConfig's defaults, 12 hours with about 15
# headlines an hour for each ticker and 30 negative ones for ZZZQ over 15
# minutes at 09:00; then `finsent monitor` with its default windows, an
# hour every 5 minutes. Replayed from HEADLINES, which the fixture's model
# knows: the bundled sample is out of its vocabulary, and two trainings of
# it called 14 and 5 of the 45-odd headlines of ZZZQ's shock window on the
# sample negative, so it would not test the detector there. Production
# models on the sample: docs/monitoring.md.
ISSUE_TICKERS = 'ACME,BOLT,CRUX,ZZZQ'


def _time(text):
  return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))


def _replays(root, export_dir, header, rows, shock_flags, *replay_flags):
  """`finsent replay` of `rows` (a CSV with `header`) with `shock_flags`
  and with `--no_shock`, each through `finsent monitor`: {'shock' |
  'no_shock': (the stream's rows, output dir, alerts)}."""
  data = root / 'headlines.csv'
  with open(data, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  runs = {}
  for name, flags in (('shock', shock_flags), ('no_shock', ['--no_shock'])):
    stream, output_dir = root / f'{name}.jsonl', root / name
    assert replay_command.main([
        '--data', str(data), '--output', str(stream), *replay_flags,
        *flags]) == 0
    assert monitor.main(['--input', str(stream), '--output', str(output_dir),
                         '--saved_model', export_dir]) == 0
    runs[name] = (_records(stream), output_dir,
                  _records(output_dir / ALERTS_FILE))
  return runs


@pytest.fixture(scope='module')
def issue_replays(exported_model, tmp_path_factory):
  """{'shock' | 'no_shock': (the stream's rows, output dir, alerts)}."""
  return _replays(tmp_path_factory.mktemp('issue_replay'), exported_model[0],
                  ['text', 'label'], HEADLINES * 200, ['--shock', 'ZZZQ'],
                  '--tickers', ISSUE_TICKERS)


def test_a_burst_of_negatives_for_one_ticker_alerts_on_its_count(
    issue_replays):
  rows, output_dir, alerts = issue_replays['shock']
  assert alerts and {a['key'] for a in alerts} == {'ZZZQ'}
  shock_times = sorted(r['published_at'] for r in rows if r['injected'])
  config = configs.ShockConfig()
  counted = []
  for alert in alerts:
    assert alert['window_start'] <= shock_times[-1]
    assert alert['window_end'] > shock_times[0]
    assert 'negative_count' in alert['tests_fired']
    count_test, = [t for t in alert['tests']
                   if t['metric'] == 'negative_count']
    assert count_test['tail_probability'] <= config.max_tail_probability
    assert count_test['z_score'] >= count_test['z_threshold']
    # The model knows the headlines: the count is the stream's own.
    start, end = _time(alert['window_start']), _time(alert['window_end'])
    assert count_test['value'] == sum(
        r['text'].startswith('$ZZZQ ') and r['label'] == 'negative' and
        start <= _time(r['published_at']) < end for r in rows)
    # The rate is the mean negatives of ZZZQ's windows that ended in the 6
    # hours before this one started (each holding 5 headlines or more).
    baseline = [w['negative'] for w in _records(output_dir / WINDOWS_FILE)
                if w['key'] == 'ZZZQ' and w['count'] >= 5 and
                start - datetime.timedelta(seconds=config.baseline_seconds)
                < _time(w['window_end']) <= start]
    assert count_test['baseline_rate'] == round(
        max(sum(baseline) / len(baseline), config.min_rate), 4)
    counted.append(count_test['value'])
  # A window holding the whole shock.
  assert max(counted) >= len(shock_times)
  # The run's summary states the peak as the test judged it: a count
  # against the rate, with its tail probability.
  with open(output_dir / SUMMARY_FILE) as f:
    printed = job.format_summary(json.load(f))
  peak = max(alerts, key=lambda a: a['z_score'])
  assert re.search(
      rf'SHOCK ZZZQ .*: peak {peak["value"]} negative headlines vs a rate of '
      rf'{peak["baseline_rate"]:.2f} a window \(p \S+\) '
      rf'\({peak["count"]} headlines\)', printed), printed
  # The report draws a count alert on the headline counts' axis.
  assert monitor_report.main([str(output_dir)]) == 0


def test_the_same_stream_without_the_shock_raises_no_alert(issue_replays):
  shocked_rows, _, _ = issue_replays['shock']
  rows, _, alerts = issue_replays['no_shock']
  # The same flat stream: the replay draws the shock after it.
  assert sorted((r['published_at'], r['text']) for r in rows) == sorted(
      (r['published_at'], r['text']) for r in shocked_rows
      if not r['injected'])
  assert alerts == []


# --- Issue 24's replay: a negative burst in one topic ---

# `finsent replay --shock_topic 'Fed | Central Banks'` (or `--no_shock`)
# with ReplayConfig's defaults over TOPIC_SENTIMENT_HEADLINES, each with a
# sentiment label and a topic (100 an hour, 8 of them negative Fed news);
# the shock adds 30 negative Fed headlines in 15 minutes, no cashtag. Then
# `finsent monitor` with its default windows, scoring with a model that
# knows both labels of those headlines.
SHOCKED_TOPIC = 'Fed | Central Banks'


@pytest.fixture(scope='module')
def topic_replays(exported_joint_model, tmp_path_factory):
  """{'shock' | 'no_shock': (the stream's rows, output dir, alerts)}."""
  return _replays(tmp_path_factory.mktemp('topic_replay'),
                  exported_joint_model[0], ['text', 'label', 'topic'],
                  TOPIC_SENTIMENT_HEADLINES * 100,
                  ['--shock_topic', SHOCKED_TOPIC])


def test_a_negative_burst_in_one_topic_alerts_for_that_topic(topic_replays):
  rows, output_dir, alerts = topic_replays['shock']
  injected = [r for r in rows if r['injected']]
  assert len(injected) == configs.ReplayConfig().shock_size
  assert {(r['label'], r['topic']) for r in injected} == {
      ('negative', SHOCKED_TOPIC)}
  topic_alerts = [a for a in alerts if is_topic_key(a['key'])]
  assert topic_alerts and {a['key'] for a in topic_alerts} == {
      topic_key(SHOCKED_TOPIC)}
  shock_times = sorted(r['published_at'] for r in injected)
  for alert in topic_alerts:
    assert alert['window_start'] <= shock_times[-1]
    assert alert['window_end'] > shock_times[0]
    # It quotes the topic's negative headline (the injected copies, and the
    # stream's own, some with a ticker's cashtag), as the model read it.
    negative, = {r['text'] for r in injected}
    assert {(h['text'].endswith(negative), h['predicted'])
            for h in alert['top_headlines']} == {(True, 'negative')}
  # No ticker is named by the burst: no ticker alerts.
  assert not [a for a in alerts
              if not is_topic_key(a['key']) and a['key'] != MARKET]
  # Every topic of the stream has its windows, as the model reads them.
  windows = _records(output_dir / WINDOWS_FILE)
  assert {w['key'] for w in windows if is_topic_key(w['key'])} == {
      topic_key(topic) for _, _, topic in TOPIC_SENTIMENT_HEADLINES}


def test_the_same_topic_stream_without_the_burst_raises_no_alert(
    topic_replays):
  shocked_rows, _, _ = topic_replays['shock']
  rows, _, alerts = topic_replays['no_shock']
  assert sorted((r['published_at'], r['text']) for r in rows) == sorted(
      (r['published_at'], r['text']) for r in shocked_rows
      if not r['injected'])
  assert alerts == []


# --- A watched directory (monitoring/watch.py) ---

def _drop(feed, name, rows, extra_lines=()):
  """Writes a headline file under another name and renames it into place,
  as a feed should."""
  temporary = os.path.join(feed, f'.{name}.writing')
  with open(temporary, 'w', encoding='utf-8') as f:
    f.writelines(json.dumps(row) + '\n' for row in rows)
    f.writelines(line + '\n' for line in extra_lines)
  os.replace(temporary, os.path.join(feed, name))


def _files_read(output_dir):
  path = os.path.join(output_dir, FILES_READ_FILE)
  return _records(path) if os.path.exists(path) else []


def _wait_until_read(output_dir, count, timeout=180):
  deadline = time.monotonic() + timeout
  while len(_files_read(output_dir)) < count:
    assert time.monotonic() < deadline, f'{count} files not read'
    time.sleep(0.1)


def _watch_session(feed, output_dir, export_dir, *steps):
  """One run of `finsent monitor --watch` (in a thread, stopped as Ctrl-C
  stops it): each step drops files and says how many have been read when
  it is done. Returns the run's summary."""
  stop = threading.Event()
  codes = []
  runner = threading.Thread(target=lambda: codes.append(monitor.main(
      ['--input', str(feed), '--watch', '--output', str(output_dir),
       '--saved_model', export_dir, '--file_system_poll_wait_seconds', '0.1',
       *WINDOW_FLAGS], stop=stop)))
  runner.start()
  try:
    for step in steps:
      _wait_until_read(output_dir, step())
  finally:
    stop.set()
    runner.join(timeout=300)
  assert codes == [0]
  with open(os.path.join(output_dir, SUMMARY_FILE)) as f:
    return json.load(f)


def test_a_watched_directory_across_a_restart_writes_what_one_run_writes(
    in_process, stream, exported_model, tmp_path):
  """Three files landing in a watched directory, the job stopped and
  started again between the second and the third: the same windows and
  alerts, byte for byte, as one batch run over the whole stream; every
  headline scored once; nothing read again by a third run, which also
  cuts the half lines a stop in the middle of a write leaves."""
  export_dir, _, _ = exported_model
  _, _, batch = in_process
  _, rows = stream
  rows = sorted(rows, key=lambda r: r['published_at'])
  # Cut inside windows, and inside the shock.
  cuts = [0, len(rows) // 3, len(rows) * 9 // 10, len(rows)]
  parts = [rows[a:b] for a, b in zip(cuts, cuts[1:])]
  feed, output_dir = tmp_path / 'feed', tmp_path / 'monitor'
  os.makedirs(feed)

  def dropping(index, extra_lines=()):
    def step():
      # Brackets: a name is not a pattern.
      _drop(feed, f'part[{index}].jsonl', parts[index], extra_lines)
      return index + 1
    return step
  first = _watch_session(feed, output_dir, export_dir, dropping(0),
                         dropping(1))
  second = _watch_session(feed, output_dir, export_dir,
                          dropping(2, MALFORMED_LINES))
  # A stop in the middle of writes (a kill, a power cut) leaves half lines.
  for name in (SCORED_FILE, WINDOWS_FILE):
    with open(output_dir / name, 'a', encoding='utf-8') as f:
      f.write('{"id": "torn')
  third = _watch_session(feed, output_dir, export_dir)

  outputs = {name: _records(os.path.join(output_dir, name))
             for name in CHANGELOGS}
  assert outputs[WINDOWS_FILE] == batch[WINDOWS_FILE]
  assert outputs[ALERTS_FILE] == batch[ALERTS_FILE] != []
  assert [(d['stage'], d['where']) for d in outputs[DEAD_LETTERS_FILE]] == [
      ('parse', f'part[2].jsonl:{len(parts[2]) + 1}'),
      ('parse', f'part[2].jsonl:{len(parts[2]) + 2}')]
  assert [first['headlines_scored'], second['headlines_scored'],
          third['headlines_scored']] == [len(parts[0]) + len(parts[1]),
                                         len(parts[2]), 0]
  assert len(_records(os.path.join(output_dir, SCORED_FILE))) == len(rows)
  assert [os.path.basename(f['path']) for f in _files_read(output_dir)] == [
      'part[0].jsonl', 'part[1].jsonl', 'part[2].jsonl']


def test_a_watch_updates_closed_windows_with_late_headlines(
    stream, exported_model, tmp_path):
  """A headline 40 minutes behind the watermark updates the closed windows
  it falls in (pane LATE); one whose windows closed more than the allowed
  lateness ago is a dead letter."""
  export_dir, _, _ = exported_model
  _, rows = stream
  rows = sorted(rows, key=lambda r: r['published_at'])
  on_time = [r for r in rows if r['published_at'] < '2026-03-02T05:00:00Z']
  late = {**on_time[0], 'id': 'late', 'published_at': '2026-03-02T04:20:00Z'}
  too_late = {**on_time[0], 'id': 'too-late',
              'published_at': '2026-03-02T02:00:00Z'}
  feed, output_dir = tmp_path / 'feed', tmp_path / 'monitor'
  os.makedirs(feed)
  closed = {}

  def first():
    _drop(feed, 'on_time.jsonl', on_time)
    return 1

  def then_late():
    closed.update({window_id: record for window_id, (_, record) in
                   read_changelog(str(output_dir / WINDOWS_FILE),
                                  'id').items()})
    _drop(feed, 'late.jsonl', [late, too_late])
    return 2
  _watch_session(feed, output_dir, export_dir, first, then_late)

  windows = {w['id']: w for w in _records(output_dir / WINDOWS_FILE)}
  # 04:20 is in the half-hour windows ending 04:30, 04:40 and 04:50, all
  # closed by the watermark (the last on-time headline, before 05:00).
  updated = [f'*/2026-03-02T04:{m}:00Z' for m in (30, 40, 50)]
  for window_id in updated:
    assert closed[window_id]['pane'] == 'ON_TIME'
    assert windows[window_id]['count'] == closed[window_id]['count'] + 1
    assert (windows[window_id]['pane'], windows[window_id]['pane_index']) \
        == ('LATE', 1)
  assert {w['id'] for w in windows.values() if w['pane'] == 'LATE'} == set(
      updated + [f'{key}/{window_id.split("/")[1]}' for key in
                 TickerExtractor.from_csv(configs.TICKER_ALIASES)(
                     late['text']) for window_id in updated])
  dead = _records(output_dir / DEAD_LETTERS_FILE)
  assert [(d['stage'], d['where'], d['record']['id']) for d in dead] == [
      ('late', 'late.jsonl:2', 'too-late')]
  assert 'more than the allowed lateness' in dead[0]['reason']


def test_ctrl_c_stops_a_watch_after_its_poll(stream, exported_model,
                                              tmp_path):
  """The real command in its own process: SIGINT ends it with its summary
  and the drained windows."""
  export_dir, _, _ = exported_model
  _, rows = stream
  feed, output_dir = tmp_path / 'feed', tmp_path / 'monitor'
  os.makedirs(feed)
  process = subprocess.Popen(
      [sys.executable, '-m', 'finsent.commands.cli', 'monitor', '--input', str(feed),
       '--watch', '--output', str(output_dir), '--saved_model', export_dir,
       '--file_system_poll_wait_seconds', '0.2', *WINDOW_FLAGS],
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    _drop(feed, 'headlines.jsonl', rows[:100])
    _wait_until_read(output_dir, 1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
  finally:
    process.kill()
  assert process.returncode == 0, stderr
  assert 'SIGINT: stopping after this poll' in stderr
  assert stdout.startswith('Monitored 100 headlines')
  windows = _records(output_dir / WINDOWS_FILE)
  assert sum(w['count'] for w in windows if w['key'] == '*') == 3 * 100


@pytest.mark.parametrize('flags, message', [
    (['--input', 'x.jsonl', '--output', 'o'], 'give one model'),
    (['--input', 'x.jsonl', '--output', 'o', '--saved_model', 'm',
      '--metric', 'volume'], "argument --metric: invalid choice: 'volume'"),
    (['--input', 'x.jsonl', '--output', 'o', '--saved_model', 'm',
      '--max_tail_probability', '1'],
     'argument --max_tail_probability: must be above 0 and below 1, got 1'),
    (['--input', 'x.jsonl', '--output', 'o', '--saved_model', 'm',
      '--min_rate', '0'], 'argument --min_rate: must be above 0, got 0'),
    (['--input', 'x.jsonl', '--output', 'o', '--saved_model', 'm',
      '--model_url', 'h:1'], 'give one model'),
    (['--output', 'o', '--saved_model', 'm'], 'give one source'),
    (['--input', 'missing/*.jsonl', '--output', 'o', '--saved_model', 'm'],
     'no such file, or no file matches'),
    (['--input', __file__, '--output', 'o', '--saved_model', 'm',
      'runner=DirectRunner'], "unrecognized argument 'runner=DirectRunner'"),
    (['--input_subscription', 'projects/p/subscriptions/s', '--watch',
      '--output', 'o', '--saved_model', 'm'], '--watch watches --input'),
    (['--input', os.path.dirname(__file__), '--watch',
      '--file_system_poll_wait_seconds', '0',
      '--output', 'o', '--saved_model', 'm'],
     '--file_system_poll_wait_seconds must be > 0'),
    (['--input', __file__, '--watch', '--output', 'o', '--saved_model', 'm'],
     '--watch watches a directory or a glob, and this is neither'),
    (['--input', os.path.dirname(__file__), '--watch', '--output',
      os.path.join(os.path.dirname(__file__), 'out'), '--saved_model', 'm'],
     'is inside the watched --input'),
])
def test_bad_flags_are_refused(flags, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    monitor.main(flags)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_a_config_file_sets_knobs_a_flag_beside_it_wins(tmp_path, write,
                                                        capsys):
  config = write('monitor.yaml', 'window_seconds: 1800\nmax_batch_size: 8\n'
                 'shock:\n  metric: mean_score\n  min_count: 7\n')
  flags = ['--input', __file__, '--output', str(tmp_path / 'o'),
           '--saved_model', 'm']
  inputs, settings, _ = monitor.parse(
      [*flags, '--config', config, '--min_count', '9'], 'finsent monitor')
  assert inputs.input == (__file__,) and inputs.saved_model == 'm'
  assert (settings.window_seconds, settings.max_batch_size,
          settings.min_batch_size) == (1800, 8, 8)
  assert (settings.shock.metric, settings.shock.min_count) == (
      'mean_score', 9)
  assert settings.period_seconds == configs.MonitorConfig().period_seconds
  bad = write('bad.yaml', 'shock:\n  min_cout: 7\n')
  with pytest.raises(SystemExit) as exit_info:
    monitor.main([*flags, '--config', bad])
  assert exit_info.value.code == 2
  assert (f'finsent monitor: error: --config: {bad}: shock.min_cout: not a '
          'setting') in capsys.readouterr().err


def test_a_missing_model_or_bad_alias_file_is_an_error(stream, tmp_path,
                                                       write, capsys):
  path, _ = stream
  assert monitor.main(['--input', path, '--output', str(tmp_path / 'o'),
                   '--saved_model', str(tmp_path)]) == 2
  assert 'neither a SavedModel' in capsys.readouterr().err
  aliases = write('aliases.csv', 'name,ticker\nAcme,acme\n')
  assert monitor.main(['--input', path, '--output', str(tmp_path / 'o'),
                   '--model_url', 'h:1', '--ticker_aliases', aliases]) == 2
  assert "aliases.csv:2: 'acme' is not a ticker" in capsys.readouterr().err
