"""End to end with topic data (issue 24): `finsent run --topic_data`.

The bundled sample (sentiment) and a sixth of the Twitter Financial News
Topic set (every 6th training row, every 7th validation row: all 20
topics) go through one pipeline: both ExampleGens, their join, the data
gate, Transform, two models with a sentiment and a topic head, TFMA on
both outputs, the gates and the pushes. Two runs of one pipeline (TFX's
cache on, so the second reuses the first's trainings):

1. `strict`: a topic minimum no model trained on 2,832 topic records
   reaches; the sentiment passes. Nothing is blessed and the summary says
   it was the topic.
2. `lenient`: topic minimums of 0. Blessed, pushed, and the production
   model answers with a topic in a fresh process.

Beam in memory and models from scratch, as tests/test_pipeline_e2e.py.
"""

import csv
import os

import pytest
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


def _write_topic_subset(folder):
  folder.mkdir()
  for name, step in TOPIC_ROWS.items():
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
