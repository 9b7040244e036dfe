"""models.strategy: which strategy the config and environment choose, and
what follows from it. Multi-worker and mirrored training run for real in
test_distributed_training.py."""

import math

import pytest
import tensorflow as tf
import tensorflow_transform as tft

from finsent.configs import features
from finsent.models import strategy
from finsent.models import trainer
from finsent.serving.server.process import free_port
from tests.conftest import SAMPLE_SEQUENCE_LENGTH

CLUSTER = {'cluster': {'worker': ['127.0.0.1:1', '127.0.0.1:2']},
           'task': {'type': 'worker', 'index': 1}}


@pytest.mark.parametrize('name,tpu,cpu_replicas,gpus,tf_config,chosen', [
    ('auto', 'grpc://10.0.0.2:8470', 1, 2, CLUSTER, 'tpu'),
    ('auto', None, 1, 2, CLUSTER, 'multi_worker_mirrored'),
    ('auto', None, 1, 2, None, 'mirrored'),
    ('auto', None, 2, 0, None, 'mirrored'),
    ('auto', None, 1, 1, None, 'default'),
    ('default', 'local', 4, 8, CLUSTER, 'default'),
    ('mirrored', None, 1, 0, None, 'mirrored'),
    ('multi_worker_mirrored', None, 1, 0, CLUSTER, 'multi_worker_mirrored'),
    ('tpu', 'local', 1, 0, None, 'tpu'),
])
def test_choice_from_config_and_environment(name, tpu, cpu_replicas, gpus,
                                            tf_config, chosen):
  assert strategy.choose_strategy(name, tpu, cpu_replicas, gpus,
                                  tf_config) == chosen


@pytest.mark.parametrize('name,tpu,cpu_replicas,tf_config,message', [
    ('tpu-please', None, 1, None, 'strategy must be one of'),
    ('tpu', None, 1, None, "strategy 'tpu' needs the TPU's address"),
    ('multi_worker_mirrored', None, 1, None,
     "strategy 'multi_worker_mirrored' needs TF_CONFIG"),
    ('auto', None, 0, None, 'cpu_replicas must be at least 1'),
])
def test_impossible_choices_say_why(name, tpu, cpu_replicas, tf_config,
                                    message):
  with pytest.raises(strategy.StrategyError, match=message):
    strategy.choose_strategy(name, tpu, cpu_replicas, 0, tf_config)


@pytest.mark.parametrize('environ,expected', [
    ({}, None),
    ({'TF_CONFIG': '  '}, None),
    ({'TF_CONFIG': '{"task": {"type": "worker", "index": 0}}'}, None),
    ({'TF_CONFIG': '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
                   '"task": {"type": "worker", "index": 1}}'}, CLUSTER),
])
def test_tf_config_names_a_cluster_or_nothing(environ, expected):
  assert strategy.cluster_from_tf_config(environ) == expected


@pytest.mark.parametrize('tf_config,message', [
    ('{"cluster": ', 'TF_CONFIG is not JSON'),
    ('["worker"]', 'TF_CONFIG must be a JSON object'),
    ('{"cluster": {"worker": ["h:1"]}}', 'is not a task of its cluster'),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", '
     '"index": 0}}', 'is not a task of its cluster'),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", '
     '"index": 1}}', 'is not a task of its cluster'),
])
def test_bad_tf_config_is_an_error_naming_it(tf_config, message):
  with pytest.raises(strategy.StrategyError, match=message):
    strategy.cluster_from_tf_config({'TF_CONFIG': tf_config})


def test_an_unreachable_tpu_is_an_error_not_a_hang():
  # The TPU path up to TF's connect, which would wait for ever on an
  # address nobody answers (nothing listens on a just-freed port).
  address = f'grpc://127.0.0.1:{free_port()}'
  with pytest.raises(strategy.StrategyError,
                     match=f'the TPU at {address} does not answer'):
    strategy.get_distribution_strategy({'strategy': 'auto', 'tpu': address})


def test_cpu_replicas_after_tensorflow_started_is_an_error():
  tf.constant(1)  # The runtime has started in this process.
  replicas = len(tf.config.list_logical_devices('CPU')) + 1
  with pytest.raises(strategy.StrategyError,
                     match=f'cpu_replicas={replicas} needs {replicas} '
                     'logical CPU devices, which must be configured before'):
    strategy.configure_cpu_replicas(replicas)


def test_one_device_is_the_chief_and_writes_where_told():
  name, default = strategy.get_distribution_strategy({'strategy': 'default'})
  assert name == 'default' and default is tf.distribute.get_strategy()
  assert strategy.task_of(default) == (None, 0)
  assert strategy.is_chief(default)
  with strategy.worker_output_dirs(default, '/a', '/b') as dirs:
    assert dirs == ('/a', '/b')


@pytest.mark.parametrize('rule,expected', [
    ('linear', 4e-3), ('sqrt', 2e-3), ('none', 1e-3)])
def test_learning_rate_follows_the_global_batch(rule, expected):
  assert math.isclose(strategy.scaled_learning_rate(1e-3, 4, rule), expected)
  assert strategy.scaled_learning_rate(1e-3, 1, rule) == 1e-3


def test_unknown_learning_rate_rule_is_an_error():
  with pytest.raises(strategy.StrategyError, match='learning_rate_scaling'):
    strategy.scaled_learning_rate(1e-3, 2, 'cubic')


def test_tpu_batches_have_static_shapes(transformed_sample):
  # What a TPU compiles: Transform pads to a fixed length, and the batches
  # drop the partial last one, so the training step has one shape.
  feature_spec = tft.TFTransformOutput(
      transformed_sample.transform_graph).transformed_feature_spec()
  assert feature_spec[features.TOKEN_IDS_KEY] == tf.io.FixedLenFeature(
      [SAMPLE_SEQUENCE_LENGTH], tf.int64)
  examples = trainer.transformed_examples(
      [f'{transformed_sample.transformed_examples}/Split-train/*'],
      feature_spec, [features.TOKEN_IDS_KEY])
  batches = trainer.shuffled_batches(examples, 96, seed=1,
                                     static_shapes=True, buffer_size=800)
  assert batches.element_spec[0][features.TOKEN_IDS_KEY].shape.as_list() == [
      96, SAMPLE_SEQUENCE_LENGTH]
  sizes = [len(y) for _, y in batches.as_numpy_iterator()]
  assert sizes == [96] * (800 // 96)
  with pytest.raises(strategy.StrategyError, match='a TPU needs static shapes'):
    strategy.require_static_shapes(examples.batch(96).element_spec)
