"""data.loaders: every format, its detection, and every kind of bad input."""

import os

import pytest

from finsent.data import loaders
from finsent.configs.features import TOPICS
from tests.conftest import TWITTER_FN_TOPIC_DIR
from tests.conftest import TWITTER_FNS_DIR


def _read(path):
  return list(loaders.read_records(path))


def _error(path):
  with pytest.raises(loaders.DataFormatError) as raised:
    _read(path)
  return str(raised.value)


def test_canonical_csv_with_optional_fields(write):
  path = write('a.csv', 'text,label,source,published_at\n'
               '"Shares of $XYZ fall, -3%",negative,twitter,2026-01-02T10:00:00Z\n'
               'Board names CFO,neutral,,\n')
  assert loaders.detect_format(path) == 'csv'
  assert _read(path) == [
      loaders.Record('Shares of $XYZ fall, -3%', 'negative', 'twitter',
                     '2026-01-02T10:00:00Z'),
      loaders.Record('Board names CFO', 'neutral'),
  ]


def test_twitter_fns_labels_map_to_canonical(write):
  path = write('sent_train.csv', 'text,label\nA cut,0\nA beat,1\nA date,2\n')
  assert loaders.detect_format(path) == 'twitter_fns'
  assert [r.label for r in _read(path)] == ['negative', 'positive', 'neutral']


def test_quoted_multiline_text_keeps_line_numbers(write):
  path = write('a.csv', 'text,label\n"two\nlines",0\nok,27\n')
  assert 'a.csv:4:' in _error(path)


def test_jsonl(write):
  path = write('a.jsonl', '{"text": "Up 5%", "label": "positive"}\n\n'
               '{"text": "Flat", "label": "neutral", "source": "blog"}\n')
  assert _read(path) == [loaders.Record('Up 5%', 'positive'),
                         loaders.Record('Flat', 'neutral', 'blog')]


def test_a_unicode_line_separator_does_not_cut_a_record(write):
  """Only \\n ends a line: U+2028 in a JSON string and the byte 0x85 (NEL)
  in latin-1 are part of the text."""
  path = write('a.jsonl', '{"text": "Up\u2028 5%", "label": "positive"}\r\n'
               .encode('utf-8'))
  assert _read(path) == [loaders.Record('Up\u2028 5%', 'positive')]
  path = write('Sentences_50Agree.txt', b'Sales up\x85 3 %@positive\n')
  assert _read(path) == [loaders.Record('Sales up\x85 3 %', 'positive')]


def test_phrasebank_latin1(write):
  path = write('Sentences_AllAgree.txt',
               'Profit rose to EUR 5 mn\xa0.@positive\nCaf\xe9 chain closes@negative\n'
               .encode('latin-1'))
  assert loaders.detect_format(path) == 'phrasebank'
  assert _read(path) == [loaders.Record('Profit rose to EUR 5 mn\xa0.', 'positive'),
                         loaders.Record('Caf\xe9 chain closes', 'negative')]


def test_utf8_bom_is_ignored(write):
  path = write('a.csv', b'\xef\xbb\xbftext,label\nok,neutral\n')
  assert _read(path) == [loaders.Record('ok', 'neutral')]


@pytest.mark.parametrize('name,content,expected', [
    ('missing_column.csv', 'text,source\nhello,blog\n',
     'missing_column.csv:1: header \'text,source\' lacks column(s) label'),
    ('unknown_column.csv', 'text,label,ticker\nhi,neutral,X\n',
     'unknown_column.csv:1: unknown column(s) ticker'),
    ('empty_text.csv', 'text,label\nok,neutral\n"   ",positive\n',
     'empty_text.csv:3: text is empty'),
    ('unknown_label.csv', 'text,label\nok,bullish\n',
     "unknown_label.csv:2: label 'bullish' is not one of negative, neutral, "
     'positive'),
    ('fns_label.csv', 'text,label\nok,1\nbad,20\n',
     "fns_label.csv:3: label '20' is not a Twitter-FNS label"),
    ('topic_id.csv', 'text,label\nok,1\nok,19\nbad,-1\n',
     "topic_id.csv:4: label '-1' is not a Twitter Financial News Topic id "
     '(0 Analyst Update to 19 Stock Movement)'),
    ('unknown_topic.csv', 'text,label,topic\nok,neutral,Macro\nok,,Sports\n',
     "unknown_topic.csv:3: topic 'Sports' is not one of the 20 topics: "
     'Analyst Update; Fed | Central Banks;'),
    ('neither.csv', 'text,label,topic\nok,neutral,\nnone,,\n',
     'neither.csv:3: the row has neither a label nor a topic'),
    ('no_label_column.csv', 'text,source\nok,blog\n',
     "no_label_column.csv:1: header 'text,source' lacks column(s) label or "
     'topic'),
    ('null_topic.jsonl', '{"text": "ok", "topic": null, "label": null}\n',
     'null_topic.jsonl:1: the row has neither a label nor a topic'),
    ('typed_topic.jsonl', '{"text": "ok", "topic": 5}\n',
     'typed_topic.jsonl:1: topic must be a string, got int'),
    ('extra_field.csv', 'text,label\nok,neutral\nsplit, badly,neutral\n',
     'extra_field.csv:3: row has 3 fields, header has 2'),
    ('short_row.csv', 'text,label\nno label here\n',
     'short_row.csv:2: row has 1 fields, header has 2'),
    ('bad_time.csv', 'text,label,published_at\nok,neutral,yesterday\n',
     "bad_time.csv:2: published_at 'yesterday' is not an ISO-8601 timestamp"),
    ('bad.jsonl', '{"text": "ok", "label": "neutral"}\n{"text": \n',
     'bad.jsonl:2: invalid JSON'),
    ('null_text.jsonl', '{"text": null, "label": "neutral"}\n',
     'null_text.jsonl:1: text must be a string, got NoneType'),
    ('no_label.jsonl', '{"text": "ok"}\n',
     "no_label.jsonl:1: missing field 'label' or 'topic'"),
    ('list.jsonl', '["ok", "neutral"]\n', 'list.jsonl:1: expected a JSON object'),
    ('typed.jsonl', '{"text": 5, "label": "neutral"}\n', 'typed.jsonl:1: text must be a string, got int'),
    ('pb.txt', 'Fine sentence@neutral\nno separator here\n',
     "pb.txt:2: expected 'sentence@label'"),
    ('header_only.csv', 'text,label\n', 'header_only.csv: no records'),
    ('empty.csv', '', 'empty.csv: no records'),
    ('table.parquet', 'x', "unsupported file type '.parquet'"),
])
def test_bad_input_names_file_and_line(write, name, content, expected):
  assert expected in _error(write(name, content))


def test_undecodable_bytes_name_the_line(write):
  path = write('latin.csv', b'text,label\nok,neutral\nCaf\xe9 closes,negative\n')
  message = _error(path)
  assert 'latin.csv:3:' in message and 'not valid utf-8' in message


def test_no_row_is_dropped_before_an_error(write):
  """A reader yields every good row up to the bad one, then raises."""
  path = write('a.csv', 'text,label\none,neutral\ntwo,neutral\n,neutral\n')
  reader = loaders.read_records(path)
  assert [next(reader).text, next(reader).text] == ['one', 'two']
  with pytest.raises(loaders.DataFormatError, match='a.csv:4: text is empty'):
    next(reader)


def test_resolve_single_file(write):
  path = write('d/news.csv', 'text,label\nok,neutral\n')
  layout = loaders.resolve_input(path)
  assert layout.input_base == os.path.dirname(path)
  assert layout.splits == {'all': 'news.csv'}


def test_resolve_folder_of_one_type(write):
  write('d/a.jsonl', '{"text": "x", "label": "neutral"}\n')
  write('d/b.jsonl', '{"text": "y", "label": "neutral"}\n')
  layout = loaders.resolve_input(os.path.dirname(write('d/README', 'notes')))
  assert layout.splits == {'all': '*.jsonl'}
  assert layout.counts() == {'all': loaders.SplitCounts(
      records=2, labels={'negative': 0, 'neutral': 2, 'positive': 0},
      topics={})}


@pytest.mark.parametrize('files,message', [
    ({'a_train.csv': '', 'b_train.csv': '', 'valid.csv': ''},
     'expected one train file and one eval file'),
    ({'a.csv': '', 'b.jsonl': ''}, 'expected data files of one type'),
    ({}, 'expected data files of one type'),
])
def test_resolve_ambiguous_folder(write, tmp_path, files, message):
  (tmp_path / 'd').mkdir()
  for name, content in files.items():
    write(f'd/{name}', content)
  with pytest.raises(loaders.DataFormatError, match=message):
    loaders.resolve_input(str(tmp_path / 'd'))


def test_resolve_missing_path(tmp_path):
  with pytest.raises(loaders.DataFormatError, match='no such file or folder'):
    loaders.resolve_input(str(tmp_path / 'nope'))


def test_twitter_fns_folder_splits_and_counts():
  layout = loaders.resolve_input(TWITTER_FNS_DIR)
  assert layout.splits == {'train': 'sent_train.csv', 'eval': 'sent_valid.csv'}
  assert layout.ignored == ('SOURCE.txt',)
  assert loaders.detect_format(os.path.join(TWITTER_FNS_DIR,
                                            'sent_train.csv')) == 'twitter_fns'
  counts = layout.counts()
  assert counts['train'].records == 9543
  assert counts['eval'].records == 2388
  # 0 Bearish, 1 Bullish, 2 Neutral in the source's own counts.
  assert counts['train'].labels == {'negative': 1442, 'neutral': 6178,
                                    'positive': 1923}
  assert not counts['train'].topics and not counts['train'].without_label


def test_twitter_fn_topic_folder_reads_topics_by_name():
  layout = loaders.resolve_input(TWITTER_FN_TOPIC_DIR)
  assert layout.splits == {'train': 'topic_train.csv',
                           'eval': 'topic_valid.csv'}
  for name in ('topic_train.csv', 'topic_valid.csv'):
    assert loaders.detect_format(
        os.path.join(TWITTER_FN_TOPIC_DIR, name)) == 'twitter_fn_topic'
  counts = layout.counts()
  assert counts['train'].records == counts['train'].without_label == 16990
  assert counts['eval'].records == counts['eval'].without_label == 4117
  # Every topic in each split, in id order; the smallest, per SOURCE.txt.
  assert list(counts['train'].topics) == list(counts['eval'].topics) == list(
      TOPICS)
  assert counts['train'].topics['IPO'] == 44
  assert counts['eval'].topics['IPO'] == 14
  assert counts['train'].topics['Gold | Metals | Materials'] == 69
  first = next(loaders.read_records(os.path.join(TWITTER_FN_TOPIC_DIR,
                                                 'topic_train.csv')))
  assert first.topic == 'Analyst Update' and first.label is None


def test_a_file_of_the_first_three_topic_ids_reads_as_sentiment(write):
  # The two Twitter Financial News sets share their CSV layout; only a
  # label above 2 tells the topic set, whose splits hold all 20 topics.
  path = write('few.csv', 'text,label\nFed holds,1\nBuy ACME,0\n')
  assert loaders.detect_format(path) == 'twitter_fns'
  path = write('more.csv', 'text,label\nFed holds,1\nDividend up,4\n')
  assert loaders.detect_format(path) == 'twitter_fn_topic'
  assert _read(path) == [
      loaders.Record('Fed holds', topic='Fed | Central Banks'),
      loaders.Record('Dividend up', topic='Dividend')]


def test_canonical_records_carry_a_label_a_topic_or_both(write):
  path = write('a.csv', 'text,topic,label,source\n'
               'Fed holds rates,Fed | Central Banks,neutral,wire\n'
               'Oil slides,Energy | Oil,,\n'
               'Shares sink,,negative,\n')
  assert loaders.detect_format(path) == 'csv'
  assert _read(path) == [
      loaders.Record('Fed holds rates', 'neutral', 'wire',
                     topic='Fed | Central Banks'),
      loaders.Record('Oil slides', topic='Energy | Oil'),
      loaders.Record('Shares sink', 'negative')]
  path = write('t.csv', 'text,topic\nIPO priced,IPO\n')
  assert _read(path) == [loaders.Record('IPO priced', topic='IPO')]
  path = write('a.jsonl', '{"text": "Oil slides", "topic": "Energy | Oil"}\n'
               '{"text": "Up", "label": "positive", "topic": "Markets"}\n')
  assert _read(path) == [loaders.Record('Oil slides', topic='Energy | Oil'),
                         loaders.Record('Up', 'positive', topic='Markets')]


def test_bundled_sample_is_valid():
  from finsent import configs
  counts = loaders.resolve_input(configs.SAMPLE_DATA).counts()['all']
  assert counts.records >= 400 and not counts.without_label
  assert min(counts.labels.values()) > 0
