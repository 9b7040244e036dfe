"""Distillation: the loss and masked metrics, the unlabelled texts' reader
and ExampleGen, MergeExamples, and a student trained by run_fn from
BulkInferrer-like examples through a real Transform graph with the
packaged encoder's tokenizer: reading the teacher's pieces (the default)
or Transform's words."""

import csv
import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx import v1 as tfx

from finsent import configs
from finsent.components import merge_examples
from finsent.components import unlabelled_example_gen
from finsent.configs import features
from finsent.configs.training import EARLY_STOPPING_MONITORS
from finsent.configs.training import HARD_TERM_MEANS
from finsent.data import loaders
from finsent.models import distillation
from finsent.models import macro_f1
from finsent.models import model_run
from finsent.models import pretrained_encoder
from finsent.models import trainer
from finsent.models import tuner
from tests.conftest import HEADLINES
from tests.conftest import ROOT
from tests.conftest import predict_in_fresh_process
from tests.conftest import transform_records

TOPIC_FILE = os.path.join(ROOT, '..', 'shared', 'data',
                          'twitter_financial_news_topic', 'topic_train.csv')
K = len(features.LABELS)
# The encoder features' padded length in these tests.
PIECES = 32


def _softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _reference_loss(y_true, q, temperature, alpha, hard_term_mean):
  """The loss in NumPy, from its definition."""
  labels, p = y_true[:, 0].astype(int), y_true[:, 1:]
  p_t = _softmax(np.log(np.maximum(p, 1e-7)) / temperature)
  q_t = _softmax(np.log(np.maximum(q, 1e-7)) / temperature)
  soft = (p_t * (np.log(p_t) - np.log(q_t))).sum(axis=1) * temperature ** 2
  labelled = labels >= 0
  ce = -np.log(np.maximum(q[np.arange(len(q)), np.maximum(labels, 0)], 1e-7))
  if hard_term_mean == 'labelled':
    hard = ce[labelled].mean() if labelled.any() else 0.0
  else:
    hard = np.where(labelled, ce, 0.0).mean()
  return alpha * soft.mean() + (1 - alpha) * hard


def _packed(labels, teacher):
  return np.concatenate([np.array(labels, np.float32)[:, None], teacher],
                        axis=1).astype(np.float32)


RNG = np.random.default_rng(0)
TEACHER = RNG.dirichlet([1] * K, 8).astype(np.float32)
STUDENT = RNG.dirichlet([1] * K, 8).astype(np.float32)
LABELS = [0, 2, -1, 1, -1, 0, 2, -1]


@pytest.mark.parametrize('temperature', [1.0, 2.0, 4.0])
@pytest.mark.parametrize('alpha', [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize('hard_term_mean', HARD_TERM_MEANS)
def test_loss_matches_numpy(temperature, alpha, hard_term_mean):
  y_true = _packed(LABELS, TEACHER)
  loss = distillation.DistillationLoss(temperature, alpha, hard_term_mean)
  assert float(loss(y_true, STUDENT)) == pytest.approx(
      _reference_loss(y_true, STUDENT, temperature, alpha, hard_term_mean),
      rel=1e-5, abs=1e-6)


@pytest.mark.parametrize('hard_term_mean', HARD_TERM_MEANS)
def test_loss_of_an_unlabelled_batch_and_of_the_teacher_itself(
    hard_term_mean):
  unlabelled = _packed([-1] * len(LABELS), TEACHER)
  loss = distillation.DistillationLoss(2.0, 0.5, hard_term_mean)
  # The soft term alone, at its weight; no division by zero labels.
  assert float(loss(unlabelled, STUDENT)) == pytest.approx(
      0.5 * _reference_loss(unlabelled, STUDENT, 2.0, 1.0, hard_term_mean),
      rel=1e-5)
  # A student that is the teacher has nothing left to learn from it.
  soft_only = distillation.DistillationLoss(3.0, 1.0, hard_term_mean)
  assert float(soft_only(_packed(LABELS, TEACHER), TEACHER)) == (
      pytest.approx(0.0, abs=1e-6))


def test_loss_config_round_trips_and_bad_settings_are_refused():
  loss = distillation.DistillationLoss(3.0, 0.25, 'batch', epsilon=1e-6)
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(loss))
  assert isinstance(restored, distillation.DistillationLoss)
  assert restored.get_config() == loss.get_config()
  y_true = _packed(LABELS, TEACHER)
  assert float(restored(y_true, STUDENT)) == float(loss(y_true, STUDENT))
  with pytest.raises(ValueError, match='temperature must be above 0'):
    distillation.DistillationLoss(0.0)
  with pytest.raises(ValueError, match=r'alpha must be in \[0, 1\]'):
    distillation.DistillationLoss(alpha=1.5)
  with pytest.raises(ValueError, match='hard_term_mean must be one of'):
    distillation.DistillationLoss(hard_term_mean='labelled_mean')


def test_masked_metrics_score_the_labelled_examples_only():
  y_true = _packed(LABELS, TEACHER)
  labelled = np.array(LABELS) >= 0
  accuracy = distillation.MaskedSparseCategoricalAccuracy()
  accuracy.update_state(y_true, STUDENT)
  assert float(accuracy.result()) == pytest.approx(
      (STUDENT.argmax(axis=1) == np.array(LABELS))[labelled].mean())
  f1 = distillation.MaskedSparseMacroF1Score(K)
  f1.update_state(y_true, STUDENT)
  unmasked = macro_f1.SparseMacroF1Score(K)
  unmasked.update_state(np.array(LABELS)[labelled], STUDENT[labelled])
  assert float(f1.result()) == pytest.approx(float(unmasked.result()))
  # Named as the metrics of integer labels, which early stopping monitors.
  assert (accuracy.name, f1.name) == ('sparse_categorical_accuracy',
                                      'macro_f1')
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(f1))
  assert isinstance(restored, distillation.MaskedSparseMacroF1Score)
  assert restored.get_config() == f1.get_config()


def test_early_stopping_monitors_exist_for_packed_targets():
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(K, activation='softmax')(
      inputs))
  model.compile('adam', distillation.DistillationLoss(),
                metrics=[distillation.MaskedSparseCategoricalAccuracy(),
                         distillation.MaskedSparseMacroF1Score(K)])
  x = RNG.normal(size=(8, 4)).astype(np.float32)
  history = model.fit(x, _packed(LABELS, TEACHER), epochs=1, verbose=0,
                      validation_data=(x, _packed(LABELS, TEACHER)))
  assert set(EARLY_STOPPING_MONITORS) <= set(
      history.history)


# read_texts.


def test_read_texts_reads_every_format_and_never_a_label(write):
  assert list(loaders.read_texts(write(
      'a.csv', 'text,label,source\nShares sink,negative,blog\n'
      '"Acme, Inc. wins",positive,\n'))) == ['Shares sink', 'Acme, Inc. wins']
  # Any other column, labels of any kind, no label at all.
  assert list(loaders.read_texts(write(
      'b.csv', 'id,text,topic\n1,Fed holds rates,7\n'))) == ['Fed holds rates']
  assert list(loaders.read_texts(write(
      'c.jsonl', '{"text": "Shares sink", "label": "Macro"}\n\n'
      '{"text": "Rates rise", "id": 3}\n'))) == ['Shares sink', 'Rates rise']
  assert list(loaders.read_texts(write(
      'd.txt', 'Profit rose 5 % @ twitter.com@positive\nAcme@x\n'.encode(
          'latin-1')))) == ['Profit rose 5 % @ twitter.com', 'Acme']


def test_read_texts_reads_the_twitter_topic_file_as_texts(tmp_path):
  if not os.path.exists(TOPIC_FILE):
    pytest.skip(f'no {TOPIC_FILE}')
  with open(TOPIC_FILE, encoding='utf-8', newline='') as f:
    header, *rows = list(csv.reader(f))
  # Every 40th row: all sorts of topics, 0..19.
  rows = rows[::40]
  path = str(tmp_path / 'topic_slice.csv')
  with open(path, 'w', encoding='utf-8', newline='') as f:
    csv.writer(f).writerows([header] + rows)
  assert max(int(label) for _, label in rows) > 2
  assert list(loaders.read_texts(path)) == [text for text, _ in rows]
  # What TextExampleGen's readers make of it: topics, no sentiment label.
  assert [(r.label, r.topic) for r in loaders.read_records(path)] == [
      (None, configs.TOPICS[int(label)]) for _, label in rows]


@pytest.mark.parametrize('name,content,error', [
    ('a.csv', 'headline,label\nShares sink,0\n',
     r'a\.csv:1: header .headline,label. lacks column\(s\) text'),
    ('a.csv', 'text,label\nShares sink,0\n   ,1\n', r'a\.csv:3: text is empty'),
    ('a.csv', 'text\n"Shares sink\n', r'a\.csv:2: malformed CSV'),
    ('a.jsonl', '{"text": "ok"}\n{"text": "oops"\n',
     r'a\.jsonl:2: invalid JSON'),
    ('a.jsonl', '{"text": "ok"}\n{"headline": "no"}\n',
     r"a\.jsonl:2: missing field 'text'"),
    ('a.jsonl', '{"text": 3}\n', r'a\.jsonl:1: text must be a string'),
    ('a.txt', 'No separator here\n', r"a\.txt:1: expected 'sentence@label'"),
    ('a.parquet', 'text\nok\n', r"a\.parquet: unsupported file type "
     r"'\.parquet'"),
    ('a.csv', '', r'a\.csv: no texts'),
    ('a.csv', 'text,label\n', r'a\.csv: no texts'),
    ('a.jsonl', '\n\n', r'a\.jsonl: no texts'),
])
def test_read_texts_errors_name_file_and_line(write, name, content, error):
  with pytest.raises(loaders.DataFormatError, match=error):
    list(loaders.read_texts(write(name, content)))


# UnlabelledTextExampleGen.


def test_unlabelled_layout(write, tmp_path):
  path = write('texts/news.csv', 'text\nShares sink\n')
  input_base, input_config, output_config = (
      unlabelled_example_gen.unlabelled_layout(path))
  assert input_base == str(tmp_path / 'texts')
  assert [(s.name, s.pattern) for s in input_config.splits] == [
      (features.UNLABELLED_SPLIT, 'news.csv')]
  assert example_gen_utils.generate_output_split_names(
      input_config, output_config) == [features.UNLABELLED_SPLIT]
  write('texts/more.csv', 'text\nRates rise\n')
  _, input_config, _ = unlabelled_example_gen.unlabelled_layout(
      str(tmp_path / 'texts'))
  assert input_config.splits[0].pattern == '*.csv'
  _, input_config, _ = unlabelled_example_gen.unlabelled_layout(
      'gs://bucket/data/topic_train.csv')
  assert input_config.splits[0].pattern == 'topic_train.csv'
  with pytest.raises(loaders.DataFormatError, match='must be one file'):
    unlabelled_example_gen.unlabelled_layout('gs://bucket/data')
  write('split/topic_train.csv', 'text\na\n')
  write('split/topic_valid.csv', 'text\nb\n')
  with pytest.raises(loaders.DataFormatError,
                     match='laid out as train .* and eval .*: name the one file'):
    unlabelled_example_gen.unlabelled_layout(str(tmp_path / 'split'))


def _examples(uri, split):
  files = tf.io.gfile.glob(os.path.join(uri, f'Split-{split}', '*'))
  return [tf.train.Example.FromString(record.numpy()) for record in
          tf.data.TFRecordDataset(files, compression_type='GZIP')]


def _run_unlabelled_example_gen(path, output_uri):
  """UnlabelledTextExampleGen's executor, on Beam, with the exec
  properties the component gets from unlabelled_layout."""
  input_base, input_config, output_config = (
      unlabelled_example_gen.unlabelled_layout(path))
  component = unlabelled_example_gen.UnlabelledTextExampleGen(
      input_base=input_base, input_config=input_config,
      output_config=output_config)
  examples = standard_artifacts.Examples()
  examples.uri = output_uri
  unlabelled_example_gen.Executor().Do(
      {}, {'examples': [examples]}, dict(component.exec_properties))
  return examples


def test_unlabelled_example_gen_writes_one_split_of_texts(write, tmp_path):
  write('texts/a.csv', 'text,label\nShares sink,9\nFed holds rates,0\n')
  write('texts/b.csv', 'text,label\nAcme wins a contract,12\n')
  examples = _run_unlabelled_example_gen(str(tmp_path / 'texts'),
                                         str(tmp_path / 'out'))
  assert artifact_utils.decode_split_names(examples.split_names) == [
      features.UNLABELLED_SPLIT]
  written = _examples(examples.uri, features.UNLABELLED_SPLIT)
  assert sorted(e.features.feature[features.TEXT_KEY].bytes_list.value[0]
                .decode() for e in written) == [
                    'Acme wins a contract', 'Fed holds rates', 'Shares sink']
  for example in written:
    assert sorted(example.features.feature) == [features.LENGTH_BUCKET_KEY,
                                                features.TEXT_KEY]
    assert example.features.feature[features.LENGTH_BUCKET_KEY].bytes_list \
        .value[0] == b'1-8'
  assert examples.get_string_custom_property('payload_format') == (
      'FORMAT_TF_EXAMPLE')


def test_unlabelled_example_gen_refuses_a_file_without_texts(write, tmp_path):
  write('texts/empty.csv', 'text\n')
  with pytest.raises(Exception, match=r'empty\.csv: no texts'):
    _run_unlabelled_example_gen(str(tmp_path / 'texts'),
                                str(tmp_path / 'out'))


# MergeExamples.


def _labelled_artifact(uri, splits):
  """An Examples artifact as TextExampleGen writes it."""
  for split, rows in splits.items():
    os.makedirs(os.path.join(uri, f'Split-{split}'))
    with tf.io.TFRecordWriter(
        os.path.join(uri, f'Split-{split}', 'data_tfrecord-00000-of-00001.gz'),
        'GZIP') as writer:
      for example in rows:
        writer.write(example.SerializeToString())
  examples = standard_artifacts.Examples()
  examples.uri = uri
  examples.split_names = artifact_utils.encode_split_names(list(splits))
  examples.set_string_custom_property('payload_format', 'FORMAT_TF_EXAMPLE')
  examples.set_string_custom_property('file_format', 'tfrecords_gzip')
  return examples


def _example(values):
  feature = {}
  for name, value in values.items():
    if isinstance(value, str):
      feature[name] = tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[value.encode('utf-8')]))
    else:
      feature[name] = tf.train.Feature(
          float_list=tf.train.FloatList(value=list(value)))
  return tf.train.Example(features=tf.train.Features(feature=feature))


def test_merge_examples_copies_the_splits_of_both(write, tmp_path):
  write('texts/a.csv', 'text\nShares sink\nFed holds rates\n')
  unlabelled = _run_unlabelled_example_gen(str(tmp_path / 'texts'),
                                           str(tmp_path / 'unlabelled'))
  row = _example({'text': 'Acme wins', 'label': 'positive'})
  labelled = _labelled_artifact(str(tmp_path / 'labelled'),
                                {'train': [row, row], 'eval': [row]})
  merged = standard_artifacts.Examples()
  merged.uri = str(tmp_path / 'merged')
  merge_examples.MergeExamples.test_call(
      examples=labelled, other_examples=unlabelled, merged_examples=merged)
  assert artifact_utils.decode_split_names(merged.split_names) == [
      'train', 'eval', features.UNLABELLED_SPLIT]
  assert [len(_examples(merged.uri, split)) for split in
          ('train', 'eval', features.UNLABELLED_SPLIT)] == [2, 1, 2]
  assert merged.get_string_custom_property('payload_format') == (
      'FORMAT_TF_EXAMPLE')
  # The ExampleGen split trap (an unlabelled `train`) is refused, not
  # merged: BulkInferrer would silently keep one of the two.
  again = _labelled_artifact(str(tmp_path / 'again'), {'train': [row]})
  other = standard_artifacts.Examples()
  other.uri = str(tmp_path / 'other')
  with pytest.raises(ValueError, match="both Examples artifacts have a "
                     "split 'train'"):
    merge_examples.MergeExamples.test_call(
        examples=labelled, other_examples=again, merged_examples=other)


def test_merge_examples_joins_same_named_splits_for_topic_data(tmp_path):
  """Topic records join the sentiment records split by split (the
  pipeline's --topic_data); splits that do not match are refused."""
  sentiment = _example({'text': 'Acme wins', 'label': 'positive'})
  topic = _example({'text': 'Fed holds rates', 'topic': 'Fed | Central Banks'})
  labelled = _labelled_artifact(str(tmp_path / 'labelled'),
                                {'train': [sentiment] * 2, 'eval': [sentiment]})
  topics = _labelled_artifact(str(tmp_path / 'topics'),
                              {'train': [topic] * 3, 'eval': [topic] * 2})
  merged = standard_artifacts.Examples()
  merged.uri = str(tmp_path / 'merged')
  merge_examples.MergeExamples.test_call(
      examples=labelled, other_examples=topics, merged_examples=merged,
      join_same_splits=1)
  assert artifact_utils.decode_split_names(merged.split_names) == [
      'train', 'eval']
  for split, expected in (('train', [sentiment] * 2 + [topic] * 3),
                          ('eval', [sentiment] + [topic] * 2)):
    assert sorted(e.SerializeToString() for e in
                  _examples(merged.uri, split)) == sorted(
                      e.SerializeToString() for e in expected), split
  only_train = _labelled_artifact(str(tmp_path / 'only_train'),
                                  {'train': [topic]})
  other = standard_artifacts.Examples()
  other.uri = str(tmp_path / 'other')
  with pytest.raises(ValueError, match=r"different splits to join: "
                     r"\['eval', 'train'\] .* and \['train'\]"):
    merge_examples.MergeExamples.test_call(
        examples=labelled, other_examples=only_train, merged_examples=other,
        join_same_splits=1)


# The student.


@dataclasses.dataclass(frozen=True)
class Inferred:
  """A Transform graph and BulkInferrer-like examples of its data."""
  transform_graph: str
  output_examples: str  # Split-train/, Split-eval/, Split-unlabelled/
  counts: dict


def _teacher(label, rng):
  """A teacher that mostly agrees with the label, never certain."""
  logits = rng.normal(size=K)
  logits[features.LABELS.index(label)] += 2.0
  return _softmax(logits[None])[0]


@pytest.fixture(scope='module')
def inferred(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('inferred'))
  records = list(loaders.read_records(configs.SAMPLE_DATA))
  train, evals, unlabelled = records[:240], records[240:300], records[300:380]
  transformed = transform_records(
      root, {'train': train, 'eval': evals}, dataclasses.replace(
          configs.PipelineConfig().preprocessing, max_tokens=16,
          encoder_sequence_length=PIECES))
  rng = np.random.default_rng(1)
  splits = {
      'train': [_example({'text': r.text, 'label': r.label,
                          'length_bucket': features.length_bucket(r.text),
                          features.TEACHER_PROBABILITIES_KEY:
                              _teacher(r.label, rng)}) for r in train],
      'eval': [_example({'text': r.text, 'label': r.label,
                         features.TEACHER_PROBABILITIES_KEY:
                             _teacher(r.label, rng)}) for r in evals],
      # No label, but for the first, whose label must be ignored too.
      features.UNLABELLED_SPLIT: [
          _example({'text': r.text, **({'label': r.label} if i == 0 else {}),
                    features.TEACHER_PROBABILITIES_KEY:
                        _teacher(r.label, rng)})
          for i, r in enumerate(unlabelled)],
  }
  output = os.path.join(root, 'output_examples')
  _labelled_artifact(output, splits)
  return Inferred(transformed.transform_graph, output,
                  {split: len(rows) for split, rows in splits.items()})


def _teacher_topics(topic, rng):
  """The teacher's topic probabilities: the record's topic most likely
  where it has one."""
  logits = rng.normal(size=len(features.TOPICS))
  if topic:
    logits[features.TOPICS.index(topic)] += 3.0
  return _softmax(logits[None])[0]


@pytest.fixture(scope='module')
def inferred_topics(tmp_path_factory):
  """As `inferred`, for a teacher with a topic head: sentiment records and
  topic records (the topic set's), each with the teacher's sentiment and
  topic probabilities."""
  root = str(tmp_path_factory.mktemp('inferred_topics'))
  sentiment = list(loaders.read_records(configs.SAMPLE_DATA))
  topics = list(loaders.read_records(TOPIC_FILE))[::40]
  train = sentiment[:160] + topics[:200]
  evals = sentiment[240:300] + topics[200:260]
  unlabelled = sentiment[300:340]
  transformed = transform_records(
      root, {'train': train, 'eval': evals}, dataclasses.replace(
          configs.PipelineConfig().preprocessing, max_tokens=16,
          encoder_sequence_length=PIECES))
  rng = np.random.default_rng(2)

  def row(record, keep_labels=True):
    labels = {key: value for key, value in (
        (features.LABEL_KEY, record.label),
        (features.TOPIC_KEY, record.topic)) if value and keep_labels}
    return _example({
        'text': record.text, **labels,
        features.TEACHER_PROBABILITIES_KEY: (
            _teacher(record.label, rng) if record.label else
            rng.dirichlet([1] * K)),
        features.TEACHER_TOPIC_PROBABILITIES_KEY: _teacher_topics(
            record.topic, rng)})

  splits = {'train': [row(r) for r in train],
            'eval': [row(r) for r in evals],
            # Labels there are ignored: the first keeps its own.
            features.UNLABELLED_SPLIT: [row(r, keep_labels=i == 0)
                                        for i, r in enumerate(unlabelled)]}
  output = os.path.join(root, 'output_examples')
  _labelled_artifact(output, splits)
  counts = {split: len(rows) for split, rows in splits.items()}
  counts['train_sentiment'], counts['train_topic'] = 160, 200
  counts['eval_sentiment'], counts['eval_topic'] = 60, 60
  return Inferred(transformed.transform_graph, output, counts)


def _student_fn_args(inferred, tmp_path, candidate='rnn_student',
                     unlabelled=True, **overrides):
  custom_config = configs.PipelineConfig().trainer_custom_config(candidate)
  custom_config['num_topics'] = overrides.pop('num_topics', 0)
  custom_config['training'].update(overrides.pop('training', {}))
  custom_config['distillation'].update(overrides)
  splits = ['train'] + ([features.UNLABELLED_SPLIT] if unlabelled else [])
  return tfx.components.FnArgs(
      train_files=[os.path.join(inferred.output_examples, f'Split-{s}', '*')
                   for s in splits],
      eval_files=[os.path.join(inferred.output_examples, 'Split-eval', '*')],
      transform_graph_path=inferred.transform_graph,
      serving_model_dir=str(tmp_path / 'serving'),
      model_run_dir=str(tmp_path / 'model_run'),
      train_steps=4,
      custom_config=custom_config)


def test_distillation_examples_pack_labels_and_teacher(inferred):
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  tft_output = tft.TFTransformOutput(inferred.transform_graph)
  examples = list(distillation.distillation_examples(
      [os.path.join(inferred.output_examples, f'Split-{s}', '*')
       for s in ('train', features.UNLABELLED_SPLIT)], tft_output)
                  .as_numpy_iterator())
  assert len(examples) == (inferred.counts['train'] +
                           inferred.counts[features.UNLABELLED_SPLIT])
  x, y = examples[0]
  assert list(x) == [features.TOKEN_IDS_KEY]
  assert x[features.TOKEN_IDS_KEY].shape == (16,)
  assert y.shape == (1 + K,)
  pieces = list(distillation.distillation_examples(
      [os.path.join(inferred.output_examples, 'Split-train', '*')],
      tft_output, input_key=pretrained_encoder.TOKEN_IDS_KEY)
                .as_numpy_iterator())
  # The words too: the held-out split hashes them.
  assert sorted(pieces[0][0]) == [pretrained_encoder.TOKEN_IDS_KEY,
                                  features.TOKEN_IDS_KEY]
  assert pieces[0][0][pretrained_encoder.TOKEN_IDS_KEY].shape == (PIECES,)
  np.testing.assert_array_equal(pieces[0][1], y)
  labels = np.array([y[0] for _, y in examples])
  train = inferred.counts['train']
  assert set(labels[:train]) <= set(range(K))
  # The unlabelled split's labels are -1, the one it carries included.
  assert set(labels[train:]) == {-1}
  np.testing.assert_allclose([y[1:].sum() for _, y in examples], 1.0,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="do not carry the teacher's 3 "
                     "probabilities as the float feature 'teacher_probs'"):
    distillation.distillation_examples(
        [os.path.join(inferred.output_examples, 'Split-eval', '*')],
        tft_output, 'teacher_probs')


def test_student_run_fn_trains_exports_and_summarises(inferred, tmp_path):
  fn_args = _student_fn_args(inferred, tmp_path, training={
      'early_stopping_monitor': 'val_macro_f1'})
  summary = trainer.run_fn(fn_args)
  assert summary == model_run.read_training_summary(str(tmp_path /
                                                        'model_run'))
  assert (summary['architecture'], summary['candidate']) == (
      'rnn', 'rnn_student')
  assert summary['distillation']['tokens'] == 'teacher_pieces'
  assert summary['hyperparameters']['trim_padding'] is True
  assert summary['parameters'] <= configs.DistillationConfig(
  ).max_student_parameters
  student = summary['distillation']
  settings = configs.DistillationConfig()
  assert {k: student[k] for k in ('temperature', 'alpha', 'hard_term_mean')
          } == {'temperature': settings.temperature, 'alpha': settings.alpha,
                'hard_term_mean': settings.hard_term_mean}
  assert student['fit_labelled'] + student['held_out'] == (
      inferred.counts['train'])
  assert student['held_out'] > 0
  assert student['fit_unlabelled'] == inferred.counts[
      features.UNLABELLED_SPLIT]
  assert student['eval_examples'] == inferred.counts['eval']
  assert 0.0 <= student['eval_teacher_agreement'] <= 1.0
  assert summary['calibration']['held_out'] and summary['calibration']['eval']
  texts = [text for text, _ in HEADLINES]
  served = predict_in_fresh_process(str(tmp_path / 'serving'), texts)
  assert served['modules'] == []
  probabilities = np.array(served['probabilities'])
  assert probabilities.shape == (len(texts), K)
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  assert served['labels'] == served['examples_labels']
  # What BulkInferrer reads of a teacher: the probabilities alone.
  assert list(served['bulk_inference']) == [features.PROBABILITIES_OUTPUT]
  np.testing.assert_allclose(
      served['bulk_inference'][features.PROBABILITIES_OUTPUT], probabilities,
      rtol=1e-5)


def test_distillation_examples_pack_each_heads_label_and_teacher(
    inferred_topics, inferred):
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  tft_output = tft.TFTransformOutput(inferred_topics.transform_graph)
  files = [os.path.join(inferred_topics.output_examples, f'Split-{s}', '*')
           for s in ('train', features.UNLABELLED_SPLIT)]
  examples = list(distillation.distillation_examples(
      files, tft_output, num_topics=len(features.TOPICS)).as_numpy_iterator())
  counts = inferred_topics.counts
  assert len(examples) == counts['train'] + counts[features.UNLABELLED_SPLIT]
  _, y = examples[0]
  assert sorted(y) == [features.SENTIMENT_HEAD, features.TOPIC_HEAD]
  assert y[features.SENTIMENT_HEAD].shape == (1 + K,)
  assert y[features.TOPIC_HEAD].shape == (1 + len(features.TOPICS),)
  ids = {head: np.array([y[head][0] for _, y in examples])
         for head in y}
  train = counts['train']
  sentiment_rows = counts['train_sentiment']
  # Sentiment records: a label, no topic; topic records the other way.
  assert set(ids[features.SENTIMENT_HEAD][:sentiment_rows]) <= set(range(K))
  assert set(ids[features.TOPIC_HEAD][:sentiment_rows]) == {-1}
  assert set(ids[features.SENTIMENT_HEAD][sentiment_rows:train]) == {-1}
  assert set(ids[features.TOPIC_HEAD][sentiment_rows:train]) <= set(
      range(len(features.TOPICS)))
  # Neither in the unlabelled split, the record carrying both included.
  for head_ids in ids.values():
    assert set(head_ids[train:]) == {-1}
  # Every record has the teacher's view of both.
  for head in ids:
    np.testing.assert_allclose([y[head][1:].sum() for _, y in examples], 1.0,
                               rtol=1e-5)
  # The records with some label are the labelled ones.
  assert sum(bool(distillation.has_label(None, y)) for _, y in examples) == (
      train)
  # A teacher without a topic head wrote no topic probabilities.
  with pytest.raises(ValueError, match="do not carry the teacher's 20 "
                     "probabilities as the float feature 'teacher_topics'"):
    distillation.distillation_examples(
        files, tft_output, num_topics=len(features.TOPICS),
        teacher_topic_probabilities_key='teacher_topics')
  # Nor can the Transform graph of data without topics give topic ids.
  with pytest.raises(ValueError, match='a student with a topic head learns '
                     "from Transform's topic_id, which this Transform graph "
                     'lacks: its data has no topics'):
    distillation.distillation_examples(
        files, tft.TFTransformOutput(inferred.transform_graph),
        num_topics=len(features.TOPICS))


def test_a_student_learns_both_heads_from_the_teacher(inferred_topics,
                                                      tmp_path):
  summary = trainer.run_fn(_student_fn_args(
      inferred_topics, tmp_path, num_topics=len(features.TOPICS)))
  assert summary['num_topics'] == len(features.TOPICS)
  student = summary['distillation']
  counts = inferred_topics.counts
  assert student['fit_labelled'] + student['held_out'] == counts['train']
  assert student['fit_unlabelled'] == counts[features.UNLABELLED_SPLIT]
  assert student['eval_examples'] == counts['eval']
  for key in ('eval_teacher_agreement', 'eval_topic_teacher_agreement'):
    assert 0.0 <= student[key] <= 1.0, key
  # Each head calibrated over the eval records labelled for it.
  calibration = summary['calibration']
  assert calibration['eval']['examples'] == counts['eval_sentiment']
  assert calibration[features.TOPIC_HEAD]['eval']['examples'] == (
      counts['eval_topic'])
  assert tf.config.optimizer.get_experimental_options().get(
      'arithmetic_optimization', True)
  texts = [text for text, _ in HEADLINES]
  served = predict_in_fresh_process(str(tmp_path / 'serving'), texts)
  assert served['modules'] == []
  assert all(topic in features.TOPICS for topic in served['topics'])
  assert np.array(served['topic_probabilities']).shape == (
      len(texts), len(features.TOPICS))
  # What BulkInferrer reads of a teacher: the same probabilities, floats
  # only.
  assert sorted(served['bulk_inference']) == [
      features.PROBABILITIES_OUTPUT, features.TOPIC_PROBABILITIES_OUTPUT]
  np.testing.assert_allclose(
      served['bulk_inference'][features.TOPIC_PROBABILITIES_OUTPUT],
      served['topic_probabilities'], rtol=1e-5)


def test_a_student_reads_the_teachers_pieces_from_its_embeddings(
    inferred, tmp_path):
  inputs = trainer.prepare_training(_student_fn_args(inferred, tmp_path),
                                    tf.distribute.get_strategy())
  assert inputs.input_keys == [pretrained_encoder.TOKEN_IDS_KEY]
  assert inputs.sequence_length == PIECES
  table = pretrained_encoder.token_embeddings('all-minilm-l6-v2')
  assert table.shape == (30_522, 384)
  assert inputs.vocabulary_size == len(table)
  x, _ = next(iter(inputs.fit_data))
  assert list(x) == [pretrained_encoder.TOKEN_IDS_KEY]
  model = trainer.compile_model(
      'rnn', inputs, {**dataclasses.asdict(configs.RnnConfig()),
                      'trim_padding': True}, 1e-3,
      configs.PipelineConfig().trainer_custom_config('rnn_student')[
          'training'])
  assert model.count_params() <= configs.DistillationConfig(
  ).max_student_parameters
  # Every row starts from the teacher's vector, projected and scaled.
  start = keras.ops.convert_to_numpy(
      model.get_layer('token_embedding').embeddings)
  projected = pretrained_encoder.project_embeddings(table, start.shape[1])
  scale = start.std() / projected.std()
  np.testing.assert_allclose(start, projected * scale, rtol=1e-4,
                             atol=1e-6)
  # A batch is cut to its longest text: the same probabilities as padded.
  batch = x[pretrained_encoder.TOKEN_IDS_KEY][:8]
  assert int(tf.reduce_max(tf.math.count_nonzero(batch, axis=1))) < PIECES
  untrimmed = trainer.MODEL_BUILDERS['rnn'](
      vocabulary_size=len(table), sequence_length=PIECES,
      input_key=pretrained_encoder.TOKEN_IDS_KEY,
      **dataclasses.asdict(configs.RnnConfig()))
  untrimmed.set_weights(model.get_weights())
  np.testing.assert_allclose(
      model({pretrained_encoder.TOKEN_IDS_KEY: batch}),
      untrimmed({pretrained_encoder.TOKEN_IDS_KEY: batch}), atol=1e-6)


def test_project_embeddings_keeps_the_principal_directions():
  rng = np.random.default_rng(0)
  # Two strong directions and noise: the projection keeps the two.
  basis = rng.normal(size=(2, 10))
  table = (rng.normal(size=(500, 2)) * [5.0, 3.0]) @ basis + rng.normal(
      scale=0.01, size=(500, 10)) + 7.0
  projected = pretrained_encoder.project_embeddings(table, 2)
  assert projected.shape == (500, 2) and projected.dtype == np.float32
  centred = table - table.mean(axis=0)
  # Distances between rows survive (up to the noise).
  np.testing.assert_allclose(
      np.linalg.norm(projected[:50, None] - projected[None, :50], axis=-1),
      np.linalg.norm(centred[:50, None] - centred[None, :50], axis=-1),
      atol=0.1)
  # The first component carries more of the spread than the second.
  assert projected[:, 0].std() > projected[:, 1].std()
  with pytest.raises(ValueError, match='a 11-wide projection of 10-wide'):
    pretrained_encoder.project_embeddings(table, 11)


def test_a_pieces_student_refuses_word_vectors(inferred, tmp_path):
  # The pipeline's config never sends them (trainer_custom_config).
  assert configs.PipelineConfig(training=dataclasses.replace(
      configs.TrainingConfig(), word_vectors='glove.txt')
  ).trainer_custom_config('rnn_student')['training']['word_vectors'] is None
  with pytest.raises(ValueError, match="a student reading the teacher's "
                     'pieces starts from the teacher.s embeddings, not from '
                     'the word vectors glove.txt'):
    trainer.prepare_training(
        _student_fn_args(inferred, tmp_path,
                         training={'word_vectors': 'glove.txt'}),
        tf.distribute.get_strategy())


def test_a_student_of_transforms_words(inferred, tmp_path):
  inputs = trainer.prepare_training(
      _student_fn_args(inferred, tmp_path, tokens='words'),
      tf.distribute.get_strategy())
  assert inputs.input_keys == [features.TOKEN_IDS_KEY]
  assert inputs.teacher_embeddings is None
  x, _ = next(iter(inputs.fit_data))
  assert x[features.TOKEN_IDS_KEY].shape[1] == 16
  with pytest.raises(ValueError, match="a student reads one of "
                     r"\('teacher_pieces', 'words'\), not 'letters'"):
    trainer.prepare_training(
        _student_fn_args(inferred, tmp_path, tokens='letters'),
        tf.distribute.get_strategy())


def test_a_student_without_unlabelled_texts(inferred, tmp_path):
  inputs = trainer.prepare_training(
      _student_fn_args(inferred, tmp_path, unlabelled=False),
      tf.distribute.get_strategy())
  assert inputs.student_rows['fit_unlabelled'] == 0
  assert inputs.class_weight is None
  _, y = next(iter(inputs.fit_data))
  assert y.shape[1] == 1 + K and min(y[:, 0].numpy()) >= 0


def test_too_big_a_student_and_class_weights_are_refused(inferred, tmp_path):
  with pytest.raises(ValueError, match='the transformer student has .* '
                     'parameters, more than max_student_parameters 1,000'):
    trainer.run_fn(_student_fn_args(inferred, tmp_path,
                                    candidate='transformer_student',
                                    max_student_parameters=1000))
  with pytest.raises(ValueError, match="class weighting 'balanced' does not "
                     'apply to a student'):
    trainer.run_fn(_student_fn_args(inferred, tmp_path, training={
        'class_weighting': 'balanced'}))
  assert not (tmp_path / 'serving').exists()


def test_the_tuner_builds_students_with_the_distillation_loss(inferred,
                                                              tmp_path):
  fn_args = _student_fn_args(inferred, tmp_path)
  fn_args.working_dir = str(tmp_path / 'tuner')
  result = tuner.tuner_fn(fn_args)
  model = result.tuner.hypermodel.build(result.tuner.oracle.get_space())
  assert isinstance(model.loss, distillation.DistillationLoss)
