"""End to end on the bundled sample: every artifact of a real local run."""

import glob
import os

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_metadata.proto.v0 import schema_pb2
from google.protobuf import text_format

from models import features
from pipeline import configs
from tests.conftest import predict_in_fresh_process
from tests.e2e import run_pipeline

pytestmark = pytest.mark.e2e

NODES = ['TextExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator',
         'Transform'] + [f'{c}.{a}' for a in configs.ARCHITECTURES
                         for c in ('Trainer', 'Evaluator', 'Pusher')]


@pytest.fixture(scope='module')
def sample_run(tmp_path_factory):
  return run_pipeline(tmp_path_factory.mktemp('sample_run'))


def _one(pattern):
  matches = glob.glob(pattern)
  assert len(matches) == 1, (pattern, matches)
  return matches[0]


def test_every_component_completed(sample_run):
  config, summary, stdout = sample_run
  assert sorted(c['node_id'] for c in summary['components']) == sorted(NODES)
  assert {c['state'] for c in summary['components']} == {'COMPLETE'}
  assert 'tensorboard --logdir_spec' in stdout
  assert 'Summary saved to' in stdout


def test_examples_split_and_schema(sample_run):
  config, _, _ = sample_run
  root = config.pipeline_root
  for split in ('train', 'eval'):
    assert glob.glob(f'{root}/TextExampleGen/examples/*/Split-{split}/*.gz')
  schema = schema_pb2.Schema()
  with open(_one(f'{root}/SchemaGen/schema/*/schema.pbtxt')) as f:
    text_format.Parse(f.read(), schema)
  by_name = {f.name: f for f in schema.feature}
  assert by_name['text'].type == schema_pb2.BYTES
  assert by_name['text'].presence.min_fraction == 1.0
  assert set(by_name) >= {'text', 'label', 'source', 'published_at'}
  assert glob.glob(f'{root}/ExampleValidator/anomalies/*/Split-eval/*')


def test_transform_graph(sample_run):
  config, _, _ = sample_run
  graph = _one(f'{config.pipeline_root}/Transform/transform_graph/*')
  import tensorflow_transform as tft
  output = tft.TFTransformOutput(graph)
  spec = output.transformed_feature_spec()
  assert spec[features.TOKEN_IDS_KEY].shape == [
      configs.PreprocessingConfig().max_tokens]
  assert output.vocabulary_size_by_name(features.TOKEN_VOCABULARY_NAME) > 500


@pytest.mark.parametrize('architecture', configs.ARCHITECTURES)
def test_model_evaluation_blessing_and_push(sample_run, architecture):
  config, summary, _ = sample_run
  root = config.pipeline_root
  model = _one(f'{root}/Trainer.{architecture}/model/*/Format-Serving')
  assert os.path.exists(os.path.join(model, 'saved_model.pb'))
  assert glob.glob(f'{root}/Trainer.{architecture}/model_run/*/'
                   'train/plugins/profile/*/*.xplane.pb'), 'no profile'
  evaluation = _one(f'{root}/Evaluator.{architecture}/evaluation/*')
  assert tfma.load_validation_result(evaluation).validation_ok
  assert os.path.exists(os.path.join(
      _one(f'{root}/Evaluator.{architecture}/blessing/*'), 'BLESSED'))

  result = next(m for m in summary['models']
                if m['architecture'] == architecture)
  thresholds = configs.BlessingThresholds()
  assert result['accuracy'] >= thresholds.min_accuracy
  assert result['macro_f1'] >= thresholds.min_macro_f1
  assert result['blessed'] and result['parameters'] > 0

  base = os.path.join(config.serving_root, config.serving_model_name(
      architecture))
  assert os.listdir(base) == [os.path.basename(result['pushed_to'])]
  pushed = result['pushed_to']
  assert os.path.dirname(pushed) == base and os.path.basename(pushed).isdigit()
  answer = predict_in_fresh_process(
      pushed, ['Shares plunge after the company cuts its outlook',
               'Board to meet on Tuesday'])
  assert set(answer['labels']) <= set(features.LABELS)
  assert answer['examples_labels'] == answer['labels']
