"""monitoring.replay and `finsent replay` (commands/replay.py): the stream,
its tickers and shock, and bad input."""

import collections
import dataclasses
import datetime
import json
import os
import re

import pytest

from finsent.commands import replay as replay_command
from finsent.data import loaders
from finsent.monitoring import replay
from finsent import configs
from tests.conftest import TWITTER_FNS_DIR

CONFIG = configs.ReplayConfig()
TIME_FORMAT = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ')
# Replay's own prefix: one of the default tickers' cashtags and a space.
PREFIX = re.compile(r'\$(%s) ' % '|'.join(CONFIG.tickers))

SMALL_CSV = ('text,label\n'
             'Widget maker cuts outlook,negative\n'
             'Lender flags loan losses,negative\n'
             '$XYZ shares crater after audit,negative\n'
             'Chipmaker beats estimates,positive\n'
             '$ABC raises dividend,positive\n'
             'Board meets on Tuesday,neutral\n'
             'Airline names new CFO,neutral\n'
             'Retailer sets results date,neutral\n')


def _time(text):
  return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))


START = _time(CONFIG.start)
END = START + datetime.timedelta(hours=CONFIG.span_hours)
SHOCK_START = START + datetime.timedelta(
    hours=CONFIG.shock_at * CONFIG.span_hours)
SHOCK_END = SHOCK_START + datetime.timedelta(minutes=CONFIG.shock_minutes)


@pytest.fixture(scope='module')
def sample():
  return list(loaders.read_records(configs.SAMPLE_DATA))


@pytest.fixture(scope='module')
def sample_rows(sample):
  return replay.replay(sample, CONFIG, 'ACME')


def _flat(rows):
  return [r for r in rows if not r['injected']]


def _original_text(row):
  return PREFIX.sub('', row['text'], count=1)


def _run(capsys, argv):
  code = replay_command.main(argv)
  out, err = capsys.readouterr()
  return code, out, err


def test_sample_stream_is_every_record_plus_the_shock(sample, sample_rows):
  assert len(sample) == 1200
  assert len(sample_rows) == len(sample) + CONFIG.shock_size
  assert [r['id'] for r in sample_rows] == [
      f'replay-{n:06d}' for n in range(1, len(sample_rows) + 1)]
  for row in sample_rows:
    assert list(row) == ['id', 'text', 'published_at', 'source', 'label',
                         'injected']
    assert row['source'] == 'replay'
    assert TIME_FORMAT.fullmatch(row['published_at'])
  # Each record exactly once, with its own label, its text at most prefixed.
  assert collections.Counter(
      (_original_text(r), r['label']) for r in _flat(sample_rows)) == \
      collections.Counter((r.text, r.label) for r in sample)


def test_times_are_sorted_within_the_span_and_even(sample, sample_rows):
  times = [_time(r['published_at']) for r in sample_rows]
  assert times == sorted(times)
  assert START <= times[0] and times[-1] <= END
  flat = [_time(r['published_at']) for r in _flat(sample_rows)]
  assert flat[0] == START
  spacing = CONFIG.span_hours * 3600 / len(sample)  # 36 s
  gaps = [(b - a).total_seconds() for a, b in zip(flat, flat[1:])]
  assert all(spacing - 1 <= gap <= spacing + 1 for gap in gaps)


def test_shock_is_negative_acme_inside_its_interval(sample, sample_rows):
  shock = [r for r in sample_rows if r['injected']]
  assert len(shock) == CONFIG.shock_size
  candidates = {r.text for r in sample
                if r.label == 'negative' and not replay.CASHTAG.search(r.text)}
  for row in shock:
    assert row['label'] == 'negative'
    assert row['text'].startswith('$ACME ')
    assert row['text'][len('$ACME '):] in candidates
    assert SHOCK_START <= _time(row['published_at']) < SHOCK_END
  # Enough candidates: drawn without replacement.
  assert len({r['text'] for r in shock}) == CONFIG.shock_size


def test_every_ticker_flows_through_every_hour(sample, sample_rows):
  hours = collections.defaultdict(set)
  counts = collections.Counter()
  for row in _flat(sample_rows):
    match = PREFIX.match(row['text'])
    if match:
      counts[match.group(1)] += 1
      hours[match.group(1)].add(
          int((_time(row['published_at']) - START).total_seconds() // 3600))
  assert sum(counts.values()) == round(CONFIG.ticker_share * len(sample))
  assert max(counts.values()) - min(counts.values()) <= 1
  for ticker in CONFIG.tickers:
    assert hours[ticker] == set(range(int(CONFIG.span_hours))), ticker


def test_headlines_with_a_cashtag_are_left_as_they_are(sample, sample_rows):
  own = [r.text for r in sample if replay.CASHTAG.search(r.text)]
  assert own  # the sample has $AAPL-style headlines
  texts = collections.Counter(r['text'] for r in _flat(sample_rows))
  for text in own:
    assert texts[text] >= 1, text
  for row in _flat(sample_rows):
    if PREFIX.match(row['text']):
      assert not replay.CASHTAG.search(_original_text(row)), row['text']


def test_only_headlines_without_a_cashtag_get_one_even_at_share_1(write):
  records = list(loaders.read_records(write('small.csv', SMALL_CSV)))
  rows = replay.replay(records, dataclasses.replace(CONFIG, ticker_share=1.0),
                       None)
  texts = sorted(r['text'] for r in rows)
  assert '$XYZ shares crater after audit' in texts
  assert '$ABC raises dividend' in texts
  assert sum(bool(PREFIX.match(t)) for t in texts) == 6


def test_same_seed_same_stream_other_seed_another(sample, sample_rows):
  assert replay.replay(sample, CONFIG, 'ACME') == sample_rows
  other = replay.replay(sample, dataclasses.replace(CONFIG, seed=8), 'ACME')
  assert other != sample_rows
  assert [r['text'] for r in _flat(other)] != \
      [r['text'] for r in _flat(sample_rows)]


def _without_id(rows):
  return [{k: v for k, v in r.items() if k != 'id'} for r in rows]


def test_no_shock_adds_nothing_and_keeps_the_flat_stream(sample, sample_rows):
  rows = replay.replay(sample, CONFIG, None)
  assert len(rows) == len(sample)
  assert not any(r['injected'] for r in rows)
  assert _without_id(rows) == _without_id(_flat(sample_rows))


def test_few_negatives_are_drawn_with_replacement(write):
  records = list(loaders.read_records(write('small.csv', SMALL_CSV)))
  rows = replay.replay(records, dataclasses.replace(CONFIG, shock_size=5),
                       'BOLT')
  shock = [r['text'] for r in rows if r['injected']]
  assert len(rows) == len(records) + 5
  assert set(shock) <= {'$BOLT Widget maker cuts outlook',
                        '$BOLT Lender flags loan losses'}
  assert len(shock) == 5


def test_main_writes_the_stream_and_a_summary(capsys, tmp_path, sample_rows):
  output = tmp_path / 'new' / 'dir' / 'stream.jsonl'
  code, out, err = _run(capsys, ['--data', configs.SAMPLE_DATA,
                                 '--output', str(output)])
  assert code == 0, err
  lines = output.read_text(encoding='utf-8').splitlines()
  assert [json.loads(line) for line in lines] == sample_rows
  assert os.listdir(output.parent) == ['stream.jsonl']  # no temporary left
  assert out.startswith(
      f'wrote 1230 headlines to {output}: 2026-03-02T00:00:00Z .. '
      '2026-03-02T12:00:00Z; tickers ACME 180, BOLT 180, CRUX 180, DYNA 180;')
  assert 'market-only' in out
  assert out.rstrip().endswith(
      'shock: 30 negative headlines for $ACME 2026-03-02T09:00:00Z .. '
      '2026-03-02T09:15:00Z')


def test_main_flags_reach_the_stream(capsys, tmp_path, write):
  data = write('small.csv', SMALL_CSV)
  output = tmp_path / 'stream.jsonl'
  code, out, err = _run(capsys, [
      '--data', data, '--output', str(output), '--tickers', 'AB, CD',
      '--shock', 'CD', '--start', '2026-01-01T01:00:00+01:00',
      '--span_hours', '2', '--ticker_share', '0.5', '--shock_at', '0.5',
      '--shock_size', '4', '--shock_minutes', '4', '--seed', '3'])
  assert code == 0, err
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert rows[0]['published_at'] == '2026-01-01T00:00:00Z'
  assert all(r['published_at'] < '2026-01-01T02:00:00Z' for r in rows)
  shock = [r for r in rows if r['injected']]
  assert [r['published_at'] for r in shock] == [
      '2026-01-01T01:00:00Z', '2026-01-01T01:01:00Z',
      '2026-01-01T01:02:00Z', '2026-01-01T01:03:00Z']
  assert all(r['text'].startswith('$CD ') for r in shock)
  tagged = [r['text'][:4] for r in rows if not r['injected'] and
            r['text'][:4] in ('$AB ', '$CD ')]
  assert tagged == ['$AB ', '$CD ', '$AB ', '$CD ']  # half of 8, in turns
  assert 'tickers AB 2, CD 2; other cashtags 2; market-only 2' in out


def test_no_shock_flag(capsys, tmp_path, write):
  output = tmp_path / 'flat.jsonl'
  code, out, err = _run(capsys, ['--data', write('small.csv', SMALL_CSV),
                                 '--output', str(output), '--no_shock'])
  assert code == 0, err
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert len(rows) == 8 and not any(r['injected'] for r in rows)
  assert out.rstrip().endswith('; no shock')


# Records with a label, a topic or both, as a canonical CSV holds them.
TOPIC_CSV = ('text,label,topic\n'
             'Fed signals more hikes ahead,negative,Fed | Central Banks\n'
             'Central bank warns on inflation,negative,Fed | Central Banks\n'
             'Growth slows sharply in the third quarter,negative,Macro\n'
             'Factory orders slump,negative,Macro\n'
             'Fed holds rates,neutral,Fed | Central Banks\n'
             'Chipmaker beats estimates,positive,Earnings\n'
             'Retailer sets results date,neutral,\n'
             'Oil output steady,,Energy | Oil\n')


def test_a_topic_shock_adds_negative_records_of_that_topic(capsys, tmp_path,
                                                           write):
  output = tmp_path / 'topic.jsonl'
  code, out, err = _run(capsys, ['--data', write('topics.csv', TOPIC_CSV),
                                 '--output', str(output),
                                 '--shock_topic', 'Macro',
                                 '--shock_size', '6'])
  assert code == 0, err
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  injected = [r for r in rows if r['injected']]
  assert len(injected) == 6 and len(rows) == 8 + 6
  assert {(r['label'], r['topic']) for r in injected} == {('negative',
                                                           'Macro')}
  # No cashtag added: a topic's news, not a ticker's.
  assert {r['text'] for r in injected} <= {
      'Growth slows sharply in the third quarter', 'Factory orders slump'}
  assert all(SHOCK_START <= _time(r['published_at']) < SHOCK_END
             for r in injected)
  # The records' own topics travel with the stream; a record without one
  # has none.
  by_text = {r['text'].split(' ', 1)[-1] if PREFIX.match(r['text'])
             else r['text']: r for r in _flat(rows)}
  assert by_text['Oil output steady']['topic'] == 'Energy | Oil'
  assert 'topic' not in by_text['Retailer sets results date']
  assert "shock: 6 negative headlines of the topic 'Macro'" in out
  # The same stream without the shock is the flat part of this one.
  flat = replay.replay(list(loaders.read_records(write('t.csv', TOPIC_CSV))),
                       CONFIG, None)
  assert _without_id(_flat(rows)) == _without_id(flat)
  with pytest.raises(ValueError, match='one shock at a time'):
    replay.check_config(CONFIG, 'ACME', 'Macro')


def test_twitter_fns_folder_reads_both_files_in_split_order(capsys, tmp_path):
  records, not_read = replay.read_data(TWITTER_FNS_DIR)
  train = list(loaders.read_records(
      os.path.join(TWITTER_FNS_DIR, 'sent_train.csv')))
  valid = list(loaders.read_records(
      os.path.join(TWITTER_FNS_DIR, 'sent_valid.csv')))
  assert (len(train), len(valid)) == (9543, 2388)
  assert records == train + valid
  assert not_read == ('SOURCE.txt',)
  output = tmp_path / 'fns.jsonl'
  code, out, err = _run(capsys, ['--data', TWITTER_FNS_DIR,
                                 '--output', str(output)])
  assert code == 0, err
  assert len(output.read_text(encoding='utf-8').splitlines()) == \
      9543 + 2388 + CONFIG.shock_size
  assert f'wrote {9543 + 2388 + CONFIG.shock_size} headlines' in out
  assert 'not read (in neither split): SOURCE.txt' in out


NO_NEGATIVE_CSV = 'text,label\n$XYZ falls,negative\nBoard meets,neutral\n'


BAD_INPUTS = [
    (['--tickers', 'ACME,acme'], SMALL_CSV,
     "ticker 'acme' is not 1-5 uppercase letters"),
    (['--tickers', 'ACMEXY'], SMALL_CSV, "ticker 'ACMEXY' is not 1-5"),
    (['--tickers', 'ACME,'], SMALL_CSV, "ticker '' is not 1-5"),
    (['--tickers', 'ACME,BOLT,ACME'], SMALL_CSV, 'ACME more than once'),
    (['--shock', 'ZETA'], SMALL_CSV,
     "shock ticker 'ZETA' is not one of the tickers ACME, BOLT, CRUX, DYNA"),
    (['--tickers', 'BOLT', '--shock', 'ACME'], SMALL_CSV,
     "shock ticker 'ACME' is not one of the tickers BOLT"),
    (['--span_hours', '0'], SMALL_CSV, 'span_hours must be a positive'),
    (['--span_hours', '-3'], SMALL_CSV, 'span_hours must be a positive'),
    (['--span_hours', 'nan'], SMALL_CSV, 'span_hours must be a positive'),
    (['--span_hours', '1e12'], SMALL_CSV, 'past the year 9999'),
    (['--ticker_share', '1.5'], SMALL_CSV, 'ticker_share must be within'),
    (['--ticker_share', '-0.1'], SMALL_CSV, 'ticker_share must be within'),
    (['--shock_at', '1'], SMALL_CSV, 'shock_at must be within [0, 1)'),
    (['--shock_at', '-0.5'], SMALL_CSV, 'shock_at must be within [0, 1)'),
    (['--shock_at', '0.99'], SMALL_CSV, 'after the span ends'),
    (['--shock_size', '0'], SMALL_CSV, 'shock_size must be at least 1'),
    (['--shock_minutes', '0'], SMALL_CSV, 'shock_minutes must be a positive'),
    (['--start', '2026-03-02T00:00:00'], SMALL_CSV, 'has no timezone'),
    (['--start', 'Monday'], SMALL_CSV, "start 'Monday' is not an ISO-8601"),
    ([], NO_NEGATIVE_CSV, 'no negative record without a cashtag'),
    (['--shock_topic', 'Weather'], SMALL_CSV,
     "shock topic 'Weather' is not a topic; the topics are Analyst Update"),
    (['--shock_topic', 'Macro'], SMALL_CSV,
     "no negative record of the topic 'Macro' to make the shock of"),
    (['--shock_topic', 'Macro'], TOPIC_CSV.replace(',negative,Macro', ',,Macro'),
     "no negative record of the topic 'Macro'"),
    ([], 'text,label\nok,negative\nbad,maybe\n',
     "data.csv:3: label 'maybe' is not one of"),
    ([], 'text,label\n', 'data.csv: no records'),
]


@pytest.mark.parametrize('flags, data, message', BAD_INPUTS,
                         ids=[message for _, _, message in BAD_INPUTS])
def test_bad_input_is_an_error_and_writes_nothing(capsys, tmp_path, write,
                                                  flags, data, message):
  output = tmp_path / 'out' / 'stream.jsonl'
  code, out, err = _run(capsys, ['--data', write('data.csv', data),
                                 '--output', str(output), *flags])
  assert code == 2
  assert err.startswith('finsent replay: error: ')
  assert message in err
  assert not out
  assert not (tmp_path / 'out').exists()


def test_missing_data_is_an_error(capsys, tmp_path):
  code, _, err = _run(capsys, ['--data', str(tmp_path / 'nope.csv'),
                               '--output', str(tmp_path / 'out.jsonl')])
  assert code == 2
  assert 'nope.csv: no such file or folder' in err
  assert os.listdir(tmp_path) == []


def test_no_shock_data_may_lack_negatives(capsys, tmp_path, write):
  output = tmp_path / 'flat.jsonl'
  code, _, err = _run(capsys, ['--data', write('d.csv', NO_NEGATIVE_CSV),
                               '--output', str(output), '--no_shock'])
  assert code == 0, err
  assert len(output.read_text().splitlines()) == 2


@pytest.mark.parametrize('flags', [
    ['--shock', 'ACME', '--no_shock'],
    ['--span_hours', 'twelve'],
    ['--shock_size', '2.5'],
])
def test_flags_argparse_refuses(capsys, tmp_path, write, flags):
  with pytest.raises(SystemExit) as raised:
    replay_command.main(['--data', write('d.csv', SMALL_CSV),
                 '--output', str(tmp_path / 'out.jsonl'), *flags])
  assert raised.value.code == 2
  assert 'finsent replay: error: argument' in capsys.readouterr().err
  assert not (tmp_path / 'out.jsonl').exists()


def test_a_config_file_sets_knobs_a_flag_beside_it_wins(capsys, tmp_path,
                                                        write):
  config = write('replay.yaml', 'span_hours: 2\nshock_size: 4\n'
                 'tickers: [AB, CD]\n')
  output = tmp_path / 'stream.jsonl'
  code, _, err = _run(capsys, ['--data', write('d.csv', SMALL_CSV),
                               '--output', str(output), '--config', config,
                               '--shock_size', '3'])
  assert code == 0, err
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert all(r['published_at'] < '2026-03-02T02:00:00Z' for r in rows)
  shock = [r['text'] for r in rows if r['injected']]
  assert len(shock) == 3 and all(t.startswith('$AB ') for t in shock)
  bad = write('bad.yaml', 'shock_sise: 4\n')
  with pytest.raises(SystemExit) as raised:
    replay_command.main(['--data', write('d.csv', SMALL_CSV), '--output',
                         str(tmp_path / 'bad.jsonl'), '--config', bad])
  assert raised.value.code == 2
  assert (f'finsent replay: error: --config: {bad}: shock_sise: not a '
          'setting; did you mean shock_size?') in capsys.readouterr().err
  assert not (tmp_path / 'bad.jsonl').exists()


def test_each_headline_is_one_line_whatever_its_characters(tmp_path):
  rows = [{'id': 'replay-000001', 'text': 'a\u2028b\x85c\u2029d \u20ac'}]
  path = tmp_path / 'stream.jsonl'
  replay.write_jsonl(rows, str(path))
  lines = path.read_text(encoding='utf-8').splitlines()
  assert [json.loads(line) for line in lines] == rows


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / 'stream.jsonl'
  path.write_text('old\n')
  with pytest.raises(TypeError):
    replay.write_jsonl([{'id': 'replay-000001'}, {'id': object()}], str(path))
  assert path.read_text() == 'old\n'
  assert os.listdir(tmp_path) == ['stream.jsonl']


def test_output_that_is_a_folder_is_an_error(capsys, tmp_path, write):
  (tmp_path / 'taken').mkdir()
  code, _, err = _run(capsys, ['--data', write('d.csv', SMALL_CSV),
                               '--output', str(tmp_path / 'taken')])
  assert code == 2
  assert 'taken' in err
  assert sorted(os.listdir(tmp_path)) == ['d.csv', 'taken']
  assert os.listdir(tmp_path / 'taken') == []
