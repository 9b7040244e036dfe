"""The TFX Tuner with models.tuner.tuner_fn, and the Trainer taking its result."""

import dataclasses
import json
import os

import pytest
from tfx import v1 as tfx
from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from finsent.models import trainer
from finsent.models import tuner
from finsent import configs
from tests.conftest import FROM_SCRATCH
from tests.conftest import write_word_vectors


def _artifact(artifact_type, uri, **properties):
  artifact = artifact_type()
  artifact.uri = uri
  for name, value in properties.items():
    setattr(artifact, name, value)
  return artifact


def test_tuner_component_searches_with_a_tiny_budget(transformed_sample,
                                                    tmp_path):
  # Trials are scored by the Trainer's early-stopping metric, here not the
  # default; with word vectors, the embedding width is theirs, not searched.
  # (Both architectures' searches run through the whole pipeline in
  # tests/test_pipeline_e2e.py's crippled run.)
  architecture, monitor = 'transformer', 'val_macro_f1'
  vectors = write_word_vectors(tmp_path / 'vectors.txt',
                               ['shares', 'fell', 'rose'], width=8)
  config = dataclasses.replace(
      FROM_SCRATCH,
      training=dataclasses.replace(configs.TrainingConfig(),
                                   early_stopping_monitor=monitor,
                                   word_vectors=vectors),
      tuning=configs.TuningConfig(enabled=True, max_trials=2,
                                  epochs_per_trial=1))
  examples = _artifact(standard_artifacts.Examples,
                       transformed_sample.transformed_examples)
  examples.split_names = artifact_utils.encode_split_names(['train', 'eval'])
  outputs = {
      specs.BEST_HYPERPARAMETERS_KEY: [_artifact(
          standard_artifacts.HyperParameters, str(tmp_path / 'best'))],
      specs.TUNER_RESULTS_KEY: [_artifact(
          standard_artifacts.TunerResults, str(tmp_path / 'results'))],
  }
  for artifacts in outputs.values():
    os.makedirs(artifacts[0].uri)
  tuner_executor.Executor(
      tuner_executor.base_executor.BaseExecutor.Context(
          tmp_dir=str(tmp_path / 'tmp'), unique_id='1')).Do(
      input_dict={
          specs.EXAMPLES_KEY: [examples],
          specs.TRANSFORM_GRAPH_KEY: [_artifact(
              standard_artifacts.TransformGraph,
              transformed_sample.transform_graph)],
      },
      output_dict=outputs,
      exec_properties={
          specs.TUNER_FN_KEY: configs.TUNER_FN,
          specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(
              tfx.proto.TrainArgs(num_steps=0)),
          specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(
              tfx.proto.EvalArgs(num_steps=0)),
          specs.CUSTOM_CONFIG_KEY: json.dumps(
              config.trainer_custom_config(architecture)),
      })
  best = json.loads((tmp_path / 'best' / 'best_hyperparameters.txt')
                    .read_text())
  results = json.loads((tmp_path / 'results' / 'tuner_results.json')
                       .read_text())
  assert len(results) == 2
  assert all(0 <= r['score'] <= 1 for r in results)
  assert max(r['score'] for r in results) == pytest.approx(
      results[0]['score'])
  # The best trial's values are the Trainer's: the builder's arguments and
  # the learning rate.
  hyperparameters, learning_rate = trainer.tuned_settings(
      config.trainer_custom_config(architecture), best)
  searched = {k: v for k, v in results[0].items()
              if k not in ('trial_id', 'score')}
  assert {**hyperparameters, trainer.LEARNING_RATE: learning_rate} == {
      **dataclasses.asdict(getattr(config, architecture)), **searched}
  assert all(r['embedding_dim'] == 8 for r in results)
  assert 1e-4 <= learning_rate <= 3e-3


def test_tuned_settings_keep_the_config_without_a_tuner():
  custom_config = FROM_SCRATCH.trainer_custom_config('rnn')
  assert trainer.tuned_settings(custom_config, None) == (
      dataclasses.asdict(configs.RnnConfig()),
      configs.TrainingConfig().learning_rate)


def test_tuned_values_outside_the_builder_are_refused():
  custom_config = FROM_SCRATCH.trainer_custom_config('rnn')
  with pytest.raises(ValueError, match=r"\['num_layers'\] are not arguments "
                     'of the rnn builder'):
    trainer.tuned_settings(custom_config, {'values': {'num_layers': 2}})


def test_every_search_space_names_only_builder_arguments():
  import keras_tuner
  for architecture, search_space in tuner.SEARCH_SPACES.items():
    configured = dataclasses.asdict(getattr(FROM_SCRATCH,
                                            architecture))
    for word_vectors_dim in (None, 50):
      searched = search_space(keras_tuner.HyperParameters(), word_vectors_dim)
      assert set(searched) <= set(configured), architecture


def test_the_fine_tuning_search_names_its_builder_arguments_and_preset():
  import keras_tuner
  config = FROM_SCRATCH
  fine_tuned = dataclasses.replace(config, preprocessing=dataclasses.replace(
      config.preprocessing, pretrained_encoder='presets/bert'))
  hp = keras_tuner.HyperParameters()
  searched = tuner.search_space(
      fine_tuned.trainer_custom_config('transformer'), hp)
  learning_rate = searched.pop(trainer.LEARNING_RATE)
  assert tuner.FINE_TUNING_LEARNING_RATE_RANGE[0] <= learning_rate <= (
      tuner.FINE_TUNING_LEARNING_RATE_RANGE[1])
  fine_tuning = dataclasses.asdict(configs.FineTuningConfig())
  fine_tuning.pop('learning_rate')
  assert set(searched) <= set(fine_tuning)
  assert hp.values[trainer.TUNED_PRESET] == 'presets/bert'


def test_a_search_for_another_model_is_refused():
  config = FROM_SCRATCH
  fine_tuned = dataclasses.replace(config, preprocessing=dataclasses.replace(
      config.preprocessing, pretrained_encoder='presets/bert'))
  found = {'values': {'dropout': 0.2, trainer.LEARNING_RATE: 3e-5,
                      trainer.TUNED_PRESET: 'presets/bert'}}
  assert trainer.tuned_settings(
      fine_tuned.trainer_custom_config('transformer'), found) == (
          {'dropout': 0.2, 'head': 'mean_pooling', 'trim_padding': True},
          3e-5)
  with pytest.raises(ValueError, match='the Tuner searched for the pretrained '
                     'encoder presets/bert, but this Trainer trains a '
                     'transformer trained from scratch'):
    trainer.tuned_settings(config.trainer_custom_config('transformer'), found)
  with pytest.raises(ValueError, match='the Tuner searched for a transformer '
                     'trained from scratch, but this Trainer trains the '
                     'pretrained encoder presets/bert'):
    trainer.tuned_settings(fine_tuned.trainer_custom_config('transformer'),
                           {'values': {'dropout': 0.2}})
