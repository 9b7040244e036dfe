"""TFX Tuner `tuner_fn`: a keras-tuner search over one architecture.

The Tuner's `custom_config` is the Trainer's (`pipeline.configs`) plus
`tuning` (`TuningConfig`), so the search fits on exactly the data the
Trainer will fit on and scores each trial on the same held-out share of
the train split that the Trainer's early stopping watches: the eval split
stays unseen until the Evaluator. The best trial's values become the
Trainer's `fn_args.hyperparameters` (`models.trainer.tuned_settings`).
"""

from typing import Any, Callable, Dict, Optional

import keras
import keras_tuner
from tfx import v1 as tfx

from models import trainer
from models import strategy as strategy_lib
from models import word_vectors as word_vectors_lib


EMBEDDING_DIMS = (64, 128, 256)
NUM_HEADS = (2, 4, 8)


def embedding_dim(hp: keras_tuner.HyperParameters,
                  word_vectors_dim: Optional[int]) -> int:
  """Searched; fixed at the word vectors' width where they are given."""
  if word_vectors_dim:
    return hp.Fixed('embedding_dim', word_vectors_dim)
  return hp.Choice('embedding_dim', EMBEDDING_DIMS)


def rnn_search_space(hp: keras_tuner.HyperParameters,
                     word_vectors_dim: Optional[int]) -> Dict[str, Any]:
  return {
      'embedding_dim': embedding_dim(hp, word_vectors_dim),
      'rnn_units': hp.Choice('rnn_units', [32, 64, 128]),
      'cell': hp.Choice('cell', ['lstm', 'gru']),
      'dropout': hp.Float('dropout', 0.1, 0.5, step=0.1),
  }


def transformer_search_space(hp: keras_tuner.HyperParameters,
                             word_vectors_dim: Optional[int]
                             ) -> Dict[str, Any]:
  width = embedding_dim(hp, word_vectors_dim)
  return {
      'embedding_dim': width,
      'num_layers': hp.Int('num_layers', 1, 3),
      # Head counts that divide the embedding width (all do the searched
      # widths).
      'num_heads': hp.Choice('num_heads', [n for n in NUM_HEADS
                                           if width % n == 0] or [1]),
      'intermediate_dim': hp.Choice('intermediate_dim', [128, 256, 512]),
      'dropout': hp.Float('dropout', 0.1, 0.5, step=0.1),
  }


def fine_tuning_search_space(hp: keras_tuner.HyperParameters
                             ) -> Dict[str, Any]:
  """A pretrained encoder's (pipeline.configs.FineTuningConfig): its
  architecture is the preset's."""
  return {'dropout': hp.Float('dropout', 0.0, 0.3, step=0.1)}


SEARCH_SPACES: Dict[str, Callable[[keras_tuner.HyperParameters,
                                   Optional[int]], Dict[str, Any]]] = {
    'rnn': rnn_search_space,
    'transformer': transformer_search_space,
}
if set(SEARCH_SPACES) != set(trainer.MODEL_BUILDERS):
  raise ImportError('SEARCH_SPACES must cover exactly the MODEL_BUILDERS')
# Adam's learning rate, searched on a log scale: from scratch, and when
# fine-tuning a pretrained encoder.
LEARNING_RATE_RANGE = (1e-4, 3e-3)
FINE_TUNING_LEARNING_RATE_RANGE = (1e-5, 1e-4)


def search_space(config: Dict[str, Any],
                 hp: keras_tuner.HyperParameters) -> Dict[str, Any]:
  """The searched builder arguments and learning rate (trainer
  .LEARNING_RATE) of the model the Trainer's `config` names. A fine-tuning
  search also records its preset (trainer.TUNED_PRESET), so that a Trainer
  of another model refuses its values."""
  pretrained_encoder = config['pretrained_encoder']
  if pretrained_encoder:
    hp.Fixed(trainer.TUNED_PRESET, pretrained_encoder)
    space, (low, high) = (fine_tuning_search_space(hp),
                          FINE_TUNING_LEARNING_RATE_RANGE)
  else:
    word_vectors = config['training']['word_vectors']
    space, (low, high) = SEARCH_SPACES[config['architecture']](
        hp, word_vectors_lib.dimension(word_vectors) if word_vectors
        else None), LEARNING_RATE_RANGE
  return {**space, trainer.LEARNING_RATE: hp.Float(
      trainer.LEARNING_RATE, low, high, sampling='log')}


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  """A RandomSearch of `tuning.max_trials` trials, each at most
  `tuning.epochs_per_trial` epochs with the Trainer's early stopping."""
  config = fn_args.custom_config
  training, tuning = config['training'], config['tuning']
  architecture = config['architecture']
  _, strategy = strategy_lib.get_distribution_strategy(training)
  keras.utils.set_random_seed(training['seed'])
  inputs = trainer.prepare_training(fn_args, strategy)
  replicas = strategy.num_replicas_in_sync

  def build(hp: keras_tuner.HyperParameters) -> keras.Model:
    searched = search_space(config, hp)
    learning_rate = searched.pop(trainer.LEARNING_RATE)
    # As the Trainer will build it (trainer.tuned_settings): the configured
    # values, the searched ones over them.
    return trainer.compile_model(
        architecture, inputs,
        {**trainer.configured_hyperparameters(config), **searched},
        strategy_lib.scaled_learning_rate(learning_rate, replicas,
                                          training['learning_rate_scaling']),
        training)

  # Each trial stops, and is scored, as the Trainer's fit stops.
  stopper = trainer.early_stopping(training)
  search = keras_tuner.RandomSearch(
      build,
      objective=keras_tuner.Objective(stopper.monitor,
                                      direction=stopper.mode),
      max_trials=tuning['max_trials'],
      seed=training['seed'],
      distribution_strategy=strategy if replicas > 1 else None,
      directory=fn_args.working_dir,
      project_name=f'{architecture}_search',
      overwrite=True)
  return tfx.components.TunerFnResult(
      tuner=search,
      fit_kwargs={
          'x': inputs.fit_data,
          'validation_data': inputs.held_out_data,
          'validation_steps': inputs.validation_steps,
          'epochs': (inputs.epochs if inputs.steps_per_epoch else
                     min(inputs.epochs, tuning['epochs_per_trial'])),
          'steps_per_epoch': inputs.steps_per_epoch,
          'class_weight': inputs.class_weight,
          'callbacks': [stopper],
          'verbose': 2,
      })
