"""TFX Tuner `tuner_fn`: a keras-tuner search over one architecture.

The search space is declared on the models' config fields (their knobs'
`search`, finsent.configs.training). The Tuner's `custom_config` is the
Trainer's (PipelineConfig.trainer_custom_config) plus
`tuning` (`TuningConfig`), so the search fits on exactly the data the
Trainer will fit on and scores each trial on the same held-out share of
the train split that the Trainer's early stopping watches: the eval split
stays unseen until the Evaluator. The best trial's values become the
Trainer's `fn_args.hyperparameters` (`models.trainer.tuned_settings`).
"""

from typing import Any, Callable, Dict, Optional, Tuple

import keras
import keras_tuner
from tfx import v1 as tfx

from finsent import configs
from finsent.configs import knobs
from finsent.models import trainer
from finsent.models import strategy as strategy_lib
from finsent.models import word_vectors as word_vectors_lib


# The searched models, by architecture: their knobs declare the ranges.
MODEL_CONFIGS = {'rnn': configs.RnnConfig,
                 'transformer': configs.TransformerConfig}
if set(MODEL_CONFIGS) != set(trainer.MODEL_BUILDERS):
  raise ImportError('MODEL_CONFIGS must cover exactly the MODEL_BUILDERS')


def hyperparameter(hp: keras_tuner.HyperParameters, name: str,
                   search: Any) -> Any:
  """keras-tuner's hyperparameter for a knob's `search` range."""
  if isinstance(search, knobs.Choice):
    return hp.Choice(name, list(search.values))
  if isinstance(search, knobs.IntRange):
    return hp.Int(name, search.low, search.high)
  if isinstance(search, knobs.FloatRange):
    return hp.Float(name, search.low, search.high, step=search.step,
                    sampling='log' if search.log else 'linear')
  raise TypeError(f'{name}: no keras-tuner hyperparameter for {search!r}')


def searched_knobs(section_type: type, hp: keras_tuner.HyperParameters,
                   word_vectors_dim: Optional[int] = None,
                   skip: Tuple[str, ...] = ()) -> Dict[str, Any]:
  """The knobs of a config section that declare a `search` range, in
  declaration order (the order keras-tuner samples them in). The embedding
  width is fixed at the word vectors' where they are given, and only head
  counts that divide the width are searched."""
  values: Dict[str, Any] = {}
  for name, knob in knobs.knobs(section_type):
    if knob.search is None or name in skip:
      continue
    search = knob.search
    if name == 'embedding_dim' and word_vectors_dim:
      values[name] = hp.Fixed(name, word_vectors_dim)
      continue
    if name == 'num_heads':
      width = values['embedding_dim']
      search = knobs.Choice(tuple(n for n in search.values
                                  if width % n == 0) or (1,))
    values[name] = hyperparameter(hp, name, search)
  return values


def model_search_space(architecture: str) -> Callable[
    [keras_tuner.HyperParameters, Optional[int]], Dict[str, Any]]:
  """The search over a from-scratch architecture's builder arguments."""
  return lambda hp, word_vectors_dim: searched_knobs(
      MODEL_CONFIGS[architecture], hp, word_vectors_dim)


SEARCH_SPACES = {architecture: model_search_space(architecture)
                 for architecture in MODEL_CONFIGS}
# Adam's learning rate, searched on a log scale: from scratch, and when
# fine-tuning a pretrained encoder.
_LEARNING_RATE_SEARCH = knobs.knob_of(configs.TrainingConfig,
                                      'learning_rate').search
_FINE_TUNING_LEARNING_RATE_SEARCH = knobs.knob_of(configs.FineTuningConfig,
                                                  'learning_rate').search
LEARNING_RATE_RANGE = (_LEARNING_RATE_SEARCH.low, _LEARNING_RATE_SEARCH.high)
FINE_TUNING_LEARNING_RATE_RANGE = (_FINE_TUNING_LEARNING_RATE_SEARCH.low,
                                   _FINE_TUNING_LEARNING_RATE_SEARCH.high)


def search_space(config: Dict[str, Any],
                 hp: keras_tuner.HyperParameters) -> Dict[str, Any]:
  """The searched builder arguments and learning rate (trainer
  .LEARNING_RATE) of the model the Trainer's `config` names. A fine-tuning
  search also records its preset (trainer.TUNED_PRESET), so that a Trainer
  of another model refuses its values."""
  pretrained_encoder = config['pretrained_encoder']
  if pretrained_encoder:
    hp.Fixed(trainer.TUNED_PRESET, pretrained_encoder)
    # A pretrained encoder's architecture is the preset's: its dropout.
    space = searched_knobs(configs.FineTuningConfig, hp,
                           skip=(trainer.LEARNING_RATE,))
    learning_rate = _FINE_TUNING_LEARNING_RATE_SEARCH
  else:
    word_vectors = config['training']['word_vectors']
    space = SEARCH_SPACES[config['architecture']](
        hp, word_vectors_lib.dimension(word_vectors) if word_vectors
        else None)
    learning_rate = _LEARNING_RATE_SEARCH
  return {**space, trainer.LEARNING_RATE: hyperparameter(
      hp, trainer.LEARNING_RATE, learning_rate)}


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
  """A RandomSearch of `tuning.max_trials` trials, each at most
  `tuning.epochs_per_trial` epochs with the Trainer's early stopping (of
  the first of the Trainer's models: trainer.trained_heads)."""
  config = fn_args.custom_config
  training, tuning = config['training'], config['tuning']
  architecture = config['architecture']
  _, strategy = strategy_lib.get_distribution_strategy(training)
  keras.utils.set_random_seed(training['seed'])
  # Separate models per head (trainer.trained_heads): the search runs on
  # the sentiment model's, and its best hyperparameters serve both.
  inputs = trainer.prepare_training(fn_args, strategy,
                                    trainer.trained_heads(config)[0])
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
  stopper = trainer.early_stopping(training, inputs.num_topics)
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
          # The datasets reshuffle themselves (trainer.prepare_training).
          'shuffle': False,
          'verbose': 2,
      })
