"""End to end with topic data (issue 24): `finsent run --topic_data`.

The bundled sample (sentiment) and a sixth of the Twitter Financial News
Topic set (every 6th training row, every 7th validation row: all 20
topics) go through one pipeline: both ExampleGens, their join, the data
gate, Transform, two candidates answering a sentiment and a topic (a
model per head each, by default), TFMA on both outputs, the gates and the pushes. Two runs of one pipeline (TFX's
cache on, so the second reuses the first's trainings):

1. `strict`: a topic minimum no model trained on 2,832 topic records
   reaches; the sentiment passes. Nothing is blessed and the summary says
   it was the topic.
2. `lenient`: topic minimums of 0. Blessed, pushed, and the production
   model answers with a topic in a fresh process.

Beam in memory and models from scratch, as tests/test_pipeline_e2e.py.
Then a run with the default models (`students`): the packaged encoder,
fine-tuned one epoch for each head, teaches the two students both,
through TFX's BulkInferrer, on the sample and a twentieth of the topic
set; every minimum 0, as only the wiring is tested there.
"""

import csv
import glob
import os
import re

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from finsent import configs
from finsent.configs import features
from finsent.models import evaluation
from finsent.pipeline import pipeline as pipeline_lib
from tests import e2e
from tests.conftest import TWITTER_FN_TOPIC_DIR
from tests.conftest import predict_in_fresh_process

pytestmark = pytest.mark.e2e

FLAGS = ('--enable_cache', '--direct_running_mode=in_memory',
         '--pretrained_encoder', 'none', '--max_epochs', '5')
# Every n-th row of each file of the topic set.
TOPIC_ROWS = {'topic_train.csv': 6, 'topic_valid.csv': 7}
SENTIMENT_EVAL_EXAMPLES = 225  # the sample's hash-split eval records
TOPIC_EVAL_EXAMPLES = 589


def _write_topic_subset(folder, rows=TOPIC_ROWS):
  folder.mkdir()
  for name, step in rows.items():
    with open(os.path.join(TWITTER_FN_TOPIC_DIR, name),
              encoding='utf-8', newline='') as f:
      rows = list(csv.reader(f))
    with open(folder / name, 'w', encoding='utf-8', newline='') as f:
      csv.writer(f).writerows([rows[0]] + rows[1::step])


def _thresholds_file(path, min_topic_accuracy, min_topic_macro_f1):
  path.write_text(f'thresholds:\n  min_topic_accuracy: {min_topic_accuracy}\n'
                  f'  min_topic_macro_f1: {min_topic_macro_f1}\n')
  return str(path)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('topics')
  _write_topic_subset(root / 'topics')
  output_dir = root / 'out'
  flags = (*FLAGS, '--topic_data', str(root / 'topics'))
  strict = e2e.run_pipeline(output_dir, *flags, '--config', _thresholds_file(
      root / 'strict.yaml', 0.95, 0.9))
  lenient = e2e.run_pipeline(output_dir, *flags, '--config', _thresholds_file(
      root / 'lenient.yaml', 0.0, 0.0))
  return {'strict': strict, 'lenient': lenient}


def test_both_sources_reach_every_model_and_each_output_is_measured(runs):
  _, summary, terminal = runs['strict']
  e2e.check_quiet_terminal(terminal)
  for node in (pipeline_lib.TOPIC_EXAMPLE_GEN, pipeline_lib.TOPIC_MERGE):
    assert f'\n{node} ...\n' in terminal, node
  assert len(summary['models']) == len(configs.ARCHITECTURES)
  for model in summary['models']:
    metrics = model['metrics']
    # Each output over the eval records labelled for it.
    assert metrics['example_count'] == SENTIMENT_EVAL_EXAMPLES
    assert metrics['topic_example_count'] == TOPIC_EVAL_EXAMPLES
    for name in ('accuracy', 'macro_f1', 'topic_accuracy', 'topic_macro_f1'):
      assert 0 < metrics[name] <= 1, (model['candidate'], name)
    # Better than chance (1/20) and than always the commonest topic.
    assert metrics['topic_accuracy'] > 0.25, model['candidate']
    # By default a model per head, served as one (--topic_model separate).
    assert set(model['separate_models']) == {'sentiment', 'topic'}
    assert re.search(
        rf"^  {model['candidate']}: a model per head \(--topic_model "
        r'separate\), served as one: sentiment [\d,]+ parameters, \d+ epochs '
        r'in \d+ s, topic [\d,]+ parameters, \d+ epochs in \d+ s$',
        terminal, re.M), model['candidate']
  header = next(line for line in terminal.splitlines()
                if line.lstrip().startswith('model '))
  assert 'topic acc' in header and 'topic F1' in header


def test_tfma_reports_each_output_and_its_topics(runs):
  config, _, _ = runs['strict']
  evaluator = os.path.join(config.pipeline_root, 'Evaluator.transformer',
                           'evaluation')
  uri = os.path.join(evaluator, sorted(os.listdir(evaluator))[-1])
  keys = {(kv.key.output_name, kv.key.name, kv.key.sub_key.class_id.value
           if kv.key.HasField('sub_key') else None)
          for metrics in tfma.load_metrics(uri)
          if not metrics.slice_key.single_slice_keys
          for kv in metrics.metric_keys_and_values
          if kv.key.model_name in ('', evaluation.CANDIDATE)}
  for output, classes in ((features.PROBABILITIES_OUTPUT, features.LABELS),
                          (features.TOPIC_PROBABILITIES_OUTPUT,
                           features.TOPICS)):
    assert {(output, 'macro_f1', None), (output, 'example_count', None)} <= keys
    assert {class_id for o, name, class_id in keys
            if o == output and name == 'class_f1'} == set(range(len(classes)))


def test_a_model_is_blessed_only_if_its_topic_head_passes(runs):
  _, summary, _ = runs['strict']
  assert not any(m['blessed'] for m in summary['models'])
  production = summary['production']
  assert not production['blessed'] and production['pushed_to'] is None
  # The sentiment passed its minimums: every failure is the topic's.
  assert production['failures']
  assert all(f.startswith('topic ') for f in production['failures']), (
      production['failures'])


def test_with_the_topic_minimums_met_the_model_is_pushed_and_serves_topics(
    runs):
  config, summary, _ = runs['lenient']
  # The same trainings, from TFX's cache: only the gates changed.
  assert summary['production']['blessed']
  pushed = summary['production']['pushed_to']
  assert pushed and pushed.startswith(
      os.path.join(config.serving_root, configs.PRODUCTION_MODEL_NAME))
  answer = predict_in_fresh_process(pushed, [
      'Fed signals two more rate hikes this year',
      'Acme beats earnings estimates and raises its dividend'])
  assert all(topic in features.TOPICS for topic in answer['topics'])
  assert [len(p) for p in answer['topic_probabilities']] == [20, 20]


# --- The encoder teaches the students both heads ---

STUDENTS = ('rnn_student', 'transformer_student')
STUDENT_TOPIC_ROWS = {'topic_train.csv': 20, 'topic_valid.csv': 20}


@pytest.fixture(scope='module')
def students(tmp_path_factory):
  root = tmp_path_factory.mktemp('topic_students')
  _write_topic_subset(root / 'topics', STUDENT_TOPIC_ROWS)
  minimums = root / 'minimums.yaml'
  minimums.write_text('thresholds:\n' + ''.join(
      f'  {name}: 0.0\n' for name in (
          'min_accuracy', 'min_macro_f1', 'min_topic_accuracy',
          'min_topic_macro_f1')))
  return e2e.run_pipeline(
      root / 'out', '--direct_running_mode=in_memory', '--topic_data',
      str(root / 'topics'), '--fine_tuning_epochs', '1', '--max_epochs', '3',
      '--config', str(minimums))


def test_bulk_inferrer_writes_the_teachers_sentiment_and_topics(students):
  config, _, _ = students
  for split in ('train', 'eval'):
    files = glob.glob(os.path.join(
        config.pipeline_root, pipeline_lib.BULK_INFERRER, 'output_examples',
        '*', f'Split-{split}', '*.gz'))
    records = [tf.train.Example.FromString(r.numpy()) for r in
               tf.data.TFRecordDataset(files, compression_type='GZIP')]
    assert records, split
    for example in records:
      feature = example.features.feature
      for key, classes in (
          (configs.TEACHER_PROBABILITIES_KEY, features.LABELS),
          (configs.TEACHER_TOPIC_PROBABILITIES_KEY, features.TOPICS)):
        values = feature[key].float_list.value
        assert len(values) == len(classes), key
        assert sum(values) == pytest.approx(1.0, abs=1e-4), key
    # Both kinds of record: the sample's and the topic set's.
    assert {('label' in e.features.feature, 'topic' in e.features.feature)
            for e in records} == {(True, False), (False, True)}, split


def test_the_students_learn_both_heads_and_are_measured_on_both(students):
  _, summary, terminal = students
  e2e.check_quiet_terminal(terminal, ('transformer', *STUDENTS))
  models = {m['candidate']: m for m in summary['models']}
  assert set(models) == {'transformer', *STUDENTS}
  # The teacher is two encoders, one per head; a student has both heads.
  assert set(models['transformer']['separate_models']) == {'sentiment',
                                                          'topic'}
  assert all(models[s]['separate_models'] is None for s in STUDENTS)
  teacher = models['transformer']['metrics']
  for student in STUDENTS:
    model = models[student]
    assert 0.0 <= model['distillation']['eval_topic_teacher_agreement'] <= 1
    assert re.search(rf"^  {student}: learned from transformer .*its top class "
                     r"is the teacher's on \d+\.\d% \(its topic on \d+\.\d%\) "
                     'of the eval split$', terminal, re.M), student
    metrics = model['metrics']
    for name in ('example_count', 'topic_example_count'):
      assert metrics[name] == teacher[name], (student, name)
    assert 0 < metrics['topic_accuracy'] <= 1, student
    answer = predict_in_fresh_process(model['pushed_to'], [
        'Fed signals two more rate hikes this year'])
    assert answer['modules'] == []
    assert answer['topics'][0] in features.TOPICS
    assert len(answer['topic_probabilities'][0]) == len(features.TOPICS)
