"""components.serving_validator: only a model the local server serves is pushed.

The real ServingValidator and AtomicPusher executors run on a real exported
model, and on copies whose serving signature fails at call time.
"""

import dataclasses
import os
import shutil

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from finsent.components import atomic_pusher
from finsent.components import serving_validator
from finsent.configs import features
from finsent.models import export
from finsent.serving.client import Prediction
from tests.conftest import break_serving_signature
from tests.conftest import artifact as _artifact
from tests.conftest import eval_examples_artifact
from tests.conftest import HEADLINES


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
  return eval_examples_artifact(tmp_path_factory.mktemp('examples'))


def _model(exported_model, tmp_path, breakage):
  export_dir, _, _ = exported_model
  model = _artifact(standard_artifacts.Model, tmp_path / 'model')
  serving_dir = os.path.join(model.uri, 'Format-Serving')
  shutil.copytree(export_dir, serving_dir)
  if breakage != 'none':
    break_serving_signature(serving_dir)
  if breakage == 'first request fails':
    # Without warm-up records the version loads, and fails when asked.
    os.remove(os.path.join(serving_dir, export.WARMUP_REQUESTS_FILE))
  return model


def _validate(model, examples, tmp_path, evaluator_blessed=1):
  blessing = _artifact(standard_artifacts.InfraBlessing, tmp_path / 'infra')
  serving_validator.ServingValidator.EXECUTOR_SPEC.executor_class().Do(
      {'model': [model], 'examples': [examples],
       'model_blessing': [_artifact(standard_artifacts.ModelBlessing,
                                    tmp_path / 'blessing',
                                    blessed=evaluator_blessed)]},
      {'blessing': [blessing]}, {'num_examples': 4})
  return blessing


def _push(model, blessing, tmp_path):
  pushed = _artifact(standard_artifacts.PushedModel, tmp_path / 'pushed')
  base = str(tmp_path / 'serving' / 'sentiment')
  atomic_pusher.Executor().Do(
      {'model': [model],
       'model_blessing': [_artifact(standard_artifacts.ModelBlessing,
                                    tmp_path / 'blessing2', blessed=1)],
       'infra_blessing': [blessing]},
      {'pushed_model': [pushed]},
      {'push_destination': '{"filesystem": {"base_directory": "%s"}}' % base,
       'custom_config': 'null'})
  return pushed, base


def test_a_servable_model_is_blessed_and_pushed(exported_model, examples,
                                                tmp_path):
  model = _model(exported_model, tmp_path, 'none')
  blessing = _validate(model, examples, tmp_path)
  assert blessing.get_int_custom_property('blessed') == 1
  assert os.path.exists(os.path.join(blessing.uri,
                                     serving_validator.BLESSED_FILE))
  pushed, base = _push(model, blessing, tmp_path)
  assert pushed.get_int_custom_property('pushed') == 1
  assert len(os.listdir(base)) == 1


@pytest.mark.parametrize('breakage, problem', [
    ('warm-up fails', 'the model did not load: '),
    ('first request fails', 'predict failed'),
])
def test_an_unservable_model_is_not_pushed(exported_model, examples, tmp_path,
                                           breakage, problem):
  model = _model(exported_model, tmp_path, breakage)
  blessing = _validate(model, examples, tmp_path)
  assert blessing.get_int_custom_property('blessed') == 0
  problems = blessing.get_string_custom_property('problems')
  assert problem in problems and 'serving_examples_examples' in problems
  assert os.path.exists(os.path.join(blessing.uri,
                                     serving_validator.NOT_BLESSED_FILE))
  pushed, base = _push(model, blessing, tmp_path)
  assert pushed.get_int_custom_property('pushed') == 0
  assert not os.path.exists(base) or not os.listdir(base)


def test_a_model_the_evaluator_refused_is_not_served(exported_model, examples,
                                                     tmp_path):
  blessing = _validate(_model(exported_model, tmp_path, 'none'), examples,
                       tmp_path, evaluator_blessed=0)
  assert blessing.get_int_custom_property('blessed') == 0
  assert 'did not bless' in blessing.get_string_custom_property('problems')


def test_a_model_with_a_topic_head_is_blessed(exported_topic_model, examples,
                                              tmp_path):
  """The server answers its topic beside the sentiment, over both APIs."""
  model = _model(exported_topic_model, tmp_path, 'none')
  blessing = _validate(model, examples, tmp_path)
  assert blessing.get_string_custom_property('problems') == ''
  assert blessing.get_int_custom_property('blessed') == 1


def test_what_an_answer_must_hold():
  sentiment = {'negative': 0.2, 'neutral': 0.5, 'positive': 0.3}
  topics = dict.fromkeys(features.TOPICS, 0.05)
  good = Prediction('Fed holds', 'neutral', sentiment, None,
                    'Fed | Central Banks', topics)
  assert serving_validator.prediction_problem(good) is None
  assert serving_validator.prediction_problem(
      Prediction('x', 'neutral', sentiment)) is None
  for wrong, problem in [
      (dict(label='bullish'), "'bullish' with probabilities"),
      (dict(probabilities={**sentiment, 'neutral': 0.9}), 'with probabilities'),
      (dict(topic='Weather'), "the topic 'Weather'"),
      (dict(topic_probabilities={**topics, 'IPO': 0.5}), 'the topic'),
  ]:
    assert problem in serving_validator.prediction_problem(
        dataclasses.replace(good, **wrong))
