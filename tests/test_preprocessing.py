"""models.preprocessing: normalisation, tokenisation and the preprocessing_fn on Beam."""

import dataclasses

import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import schema_utils

from finsent.configs import features
from finsent.models import preprocessing
from finsent import configs
from tests.conftest import FROM_SCRATCH

RAW_SPEC = {
    'text': tf.io.FixedLenFeature([1], tf.string),
    'label': tf.io.FixedLenFeature([1], tf.string),
}


def _normalize(text):
  return preprocessing.normalize_text(tf.constant([text])).numpy()[0].decode()


def _tokens(text):
  return [t.decode() for t in
          preprocessing.tokenize(tf.constant([text])).to_list()[0]]


@pytest.mark.parametrize('text,expected_tokens', [
    ('$AAPL up +12% after earnings BEAT https://t.co/x1',
     ['xxticker', 'up', 'xxpercentup', 'after', 'earnings', 'beat', 'xxurl']),
    ('Shares -8.5% (−3% pre-market)',
     ['shares', 'xxpercentdown', '(', 'xxpercentdown', 'pre', '-', 'market',
      ')']),
    ('Revenue $84 million, €3.2bn; 1,200 jobs',
     ['revenue', 'xxmoney', ',', 'xxmoney', ';', 'xxnum', 'jobs']),
    ('$BRK.B steady at 5%', ['xxticker', 'steady', 'at', 'xxpercent']),
])
def test_normalisation_and_tokens(text, expected_tokens):
  assert _tokens(text) == expected_tokens


@pytest.mark.parametrize('text', ['', '   ', '😀😀', 'Überraschung: Gewinn steigt',
                                  '利润大增', 'a' * 5000, '\n\t'])
def test_odd_text_tokenizes(text):
  tokens = _tokens(text)
  assert all(t.strip() for t in tokens)
  if not text.strip():
    assert tokens == []


def test_class_ids_order_unknown_and_missing():
  ids = preprocessing.class_ids(
      tf.constant(['negative', 'neutral', 'positive', 'bullish', '']),
      features.LABELS)
  assert ids.numpy().tolist() == [0, 1, 2, -1, -1]
  topics = preprocessing.class_ids(
      tf.constant(['Analyst Update', 'Stock Movement', 'Fed | Central Banks',
                   'fed | central banks']), features.TOPICS)
  assert topics.numpy().tolist() == [0, 19, 1, -1]


def _analyze_and_transform(rows, config, temp_dir):
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(RAW_SPEC))
  rows = [{k: [v] for k, v in row.items()} for row in rows]
  with tft_beam.Context(temp_dir=str(temp_dir)):
    (transformed, transformed_metadata), _ = (
        (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, config)))
  return transformed, transformed_metadata


def test_preprocessing_fn_on_beam(tmp_path):
  config = dataclasses.asdict(dataclasses.replace(
      FROM_SCRATCH.preprocessing, max_tokens=6, vocabulary_size=3,
      oov_buckets=2, min_token_frequency=1))
  rows = [
      {'text': 'beat beat beat raises', 'label': 'positive'},
      {'text': 'miss miss cuts', 'label': 'negative'},
      {'text': 'beat miss date set for the meeting later', 'label': 'neutral'},
      {'text': '', 'label': 'neutral'},
  ]
  transformed, metadata = _analyze_and_transform(rows, config, tmp_path)
  spec = metadata.schema
  assert {f.name for f in spec.feature} == {features.TOKEN_IDS_KEY,
                                            features.LABEL_ID_KEY}
  by_label = {r[features.LABEL_ID_KEY]: r[features.TOKEN_IDS_KEY].tolist()
              for r in transformed if r[features.TOKEN_IDS_KEY].any()}
  # Top-3 vocabulary: beat (4), miss (3), then one of the 1-count tokens;
  # ids are shifted by one (0 = padding), OOV ids are 4..5.
  positive = by_label[2]
  assert positive[:3] == [1, 1, 1] and positive[4:] == [0, 0]
  assert by_label[0][:2] == [2, 2]
  neutral = by_label[1]
  assert len(neutral) == 6 and 0 not in neutral  # truncated to max_tokens
  assert all(0 <= i <= 3 + 2 for row in transformed
             for i in row[features.TOKEN_IDS_KEY])
  empty = [r for r in transformed if not r[features.TOKEN_IDS_KEY].any()]
  assert len(empty) == 1 and empty[0][features.LABEL_ID_KEY] == 1


def test_preprocessing_fn_topic_and_label_each_optional(tmp_path):
  """Records carry a sentiment label, a topic or both, as the canonical
  schema allows: each id is -1 where its record lacks it."""
  config = dataclasses.asdict(dataclasses.replace(
      FROM_SCRATCH.preprocessing, max_tokens=4, vocabulary_size=5,
      min_token_frequency=1))
  raw_spec = {'text': tf.io.FixedLenFeature([1], tf.string),
              'label': tf.io.VarLenFeature(tf.string),
              'topic': tf.io.VarLenFeature(tf.string)}
  rows = [
      {'text': 'fed holds rates', 'topic': ['Fed | Central Banks']},
      {'text': 'shares jump', 'label': ['positive'],
       'topic': ['Stock Movement']},
      {'text': 'guidance cut', 'label': ['negative']},
  ]
  rows = [{'label': [], 'topic': [], **row} for row in rows]
  rows = [{**row, 'text': [row['text']]} for row in rows]
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(raw_spec))
  with tft_beam.Context(temp_dir=str(tmp_path)):
    (transformed, transformed_metadata), _ = (
        (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, config)))
  assert {f.name for f in transformed_metadata.schema.feature} == {
      features.TOKEN_IDS_KEY, features.LABEL_ID_KEY, features.TOPIC_ID_KEY}
  ids = [(int(r[features.LABEL_ID_KEY]), int(r[features.TOPIC_ID_KEY]))
         for r in transformed]
  assert sorted(ids) == sorted([(-1, 1), (2, 19), (0, -1)])


def _analyze_then_transform(train_rows, rows, config, temp_dir):
  """Analyzes `train_rows`, as Transform analyzes the train split, and
  transforms `rows` with the result: [token_ids] per row."""
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(RAW_SPEC))
  as_lists = lambda rs: [{k: [v] for k, v in row.items()} for row in rs]
  with tft_beam.Context(temp_dir=str(temp_dir)):
    transform_fn = (as_lists(train_rows), metadata) | tft_beam.AnalyzeDataset(
        lambda inputs: preprocessing.preprocessing_fn(inputs, config))
    (transformed, _) = (((as_lists(rows), metadata), transform_fn)
                        | tft_beam.TransformDataset())
  return [r[features.TOKEN_IDS_KEY].tolist() for r in transformed]


def test_wordpiece_on_beam_splits_unseen_words_into_learned_pieces(tmp_path):
  config = dataclasses.asdict(dataclasses.replace(
      FROM_SCRATCH.preprocessing, tokenization='wordpiece',
      wordpiece_vocabulary_size=200, max_tokens=12, min_token_frequency=1))
  train = [{'text': text, 'label': 'negative'} for text in
           ['Acme downgrade hits shares', 'Downgrade after downgrade',
            'analyst downgrade on $ACME down -5%', 'shares hit lows',
            'shares downgrade', 'hits misses upgrades'] * 4]
  odd = ['shares downgrade', 'downgrades', '', '😀😀 🚀',
         'Überraschung: 利润大增', 'downgrade ' * 400,
         '$ACME -5% https://t.co/x']
  ids = _analyze_then_transform(
      train, [{'text': t, 'label': 'neutral'} for t in odd], config, tmp_path)
  shares_id, downgrade_id = ids[0][:2]
  # 'downgrades' never occurs in training: 'downgrade' + '##s' (learned
  # from 'hits', 'misses', 'upgrades'), not an unknown token.
  assert ids[1][0] == downgrade_id and ids[1][1] not in (0, downgrade_id)
  assert ids[1][2:] == [0] * 10
  assert ids[2] == [0] * 12  # empty text: all padding
  for row in (3, 4):  # emoji and other scripts: unknown, but ids
    assert ids[row][0] > 0 and len(ids[row]) == 12
  assert ids[5] == [downgrade_id] * 12  # long text, truncated
  # Placeholders stay whole: ticker, percent, URL are one id each.
  assert all(ids[6][:3]) and ids[6][3:] == [0] * 9
  assert shares_id not in ids[6]


def test_unknown_tokenization_is_refused(tmp_path):
  config = dataclasses.asdict(dataclasses.replace(
      FROM_SCRATCH.preprocessing, tokenization='bpe'))
  with pytest.raises(ValueError, match="tokenization must be one of"):
    _analyze_and_transform([{'text': 'x', 'label': 'neutral'}], config,
                           tmp_path)
