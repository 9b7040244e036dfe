"""`finsent monitor` end to end on a replayed stream with an injected shock.

The model is a real one (the `exported_model` fixture: Transform on Beam, a
Keras model trained on HEADLINES, the pipeline's export), so the stream is
replayed from those headlines: the model knows them, and the windows'
counts follow from the replay. Scored in process with RunInference, and
through a real server on 127.0.0.1; and with the server down.
"""

import json
import os

from pyarrow import parquet
import pytest

from components.atomic_pusher import publish_model
from monitoring import job
from monitoring.outputs import ALERTS_FILE
from monitoring.outputs import CHANGELOGS
from monitoring.outputs import DEAD_LETTERS_FILE
from monitoring.outputs import SUMMARY_FILE
from monitoring.outputs import WINDOW_SCHEMA
from monitoring.outputs import WINDOWS_FILE
from monitoring.outputs import WINDOWS_PARQUET_FILE
from monitoring import replay
from pipeline import configs
from serving.process import free_port
from serving.process import ModelServerProcess
from tests.conftest import HEADLINES

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
  from data.loaders import Record
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
  code = job.main(['--input', stream_path, '--output', str(output_dir),
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


@pytest.mark.parametrize('flags, message', [
    (['--input', 'x.jsonl', '--output', 'o'], 'give one model'),
    (['--input', 'x.jsonl', '--output', 'o', '--saved_model', 'm',
      '--model_url', 'h:1'], 'give one model'),
    (['--output', 'o', '--saved_model', 'm'], 'give one source'),
    (['--input', 'missing/*.jsonl', '--output', 'o', '--saved_model', 'm'],
     'no such file, or no file matches'),
    (['--input', __file__, '--output', 'o', '--saved_model', 'm',
      'runner=DirectRunner'], "unrecognized argument 'runner=DirectRunner'"),
])
def test_bad_flags_are_refused(flags, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    job.main(flags)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_a_missing_model_or_bad_alias_file_is_an_error(stream, tmp_path,
                                                       write, capsys):
  path, _ = stream
  assert job.main(['--input', path, '--output', str(tmp_path / 'o'),
                   '--saved_model', str(tmp_path)]) == 2
  assert 'neither a SavedModel' in capsys.readouterr().err
  aliases = write('aliases.csv', 'name,ticker\nAcme,acme\n')
  assert job.main(['--input', path, '--output', str(tmp_path / 'o'),
                   '--model_url', 'h:1', '--ticker_aliases', aliases]) == 2
  assert "aliases.csv:2: 'acme' is not a ticker" in capsys.readouterr().err
