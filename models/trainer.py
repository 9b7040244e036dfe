"""TFX Trainer `run_fn`: trains one architecture and exports it.

The Trainer's `custom_config` names the architecture and carries its
hyperparameters and the training settings (see `pipeline.configs`), so the
RNN and the Transformer Trainers run this same function.
"""

import json
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from models import export
from models import features
from models import rnn
from models import strategy as strategy_lib
from models import transformer

# Written into the ModelRun artifact beside the TensorBoard logs.
TRAINING_SUMMARY_FILE = 'training_summary.json'

MODEL_BUILDERS = {
    'rnn': rnn.build_rnn_classifier,
    'transformer': transformer.build_transformer_classifier,
}
ARCHITECTURES = tuple(MODEL_BUILDERS)


def _examples(file_patterns: List[str],
              feature_spec: Dict[str, Any]) -> tf.data.Dataset:
  """Unbatched (token_ids dict, label_id) pairs from transformed TFRecords."""
  files = sorted(f for p in file_patterns for f in tf.io.gfile.glob(p))
  if not files:
    raise ValueError(f'no transformed examples match {file_patterns}')
  spec = {k: feature_spec[k]
          for k in (features.TOKEN_IDS_KEY, features.LABEL_ID_KEY)}
  return tf.data.TFRecordDataset(files, compression_type='GZIP').map(
      lambda record: tf.io.parse_single_example(record, spec)).map(
          lambda x: ({features.TOKEN_IDS_KEY: x[features.TOKEN_IDS_KEY]},
                     x[features.LABEL_ID_KEY]))


def split_for_early_stopping(examples: tf.data.Dataset,
                             validation_fraction: float
                             ) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
  """Holds out a hash-chosen share of the training examples.

  Early stopping watches this held-out part of the train split, so the eval
  split stays unseen until the Evaluator measures it. The choice hashes the
  token ids, so it does not depend on the order Beam wrote the examples in,
  and duplicate texts land on the same side.
  """
  buckets = max(2, round(1 / validation_fraction))

  def held_out(x, _):
    ids = tf.strings.reduce_join(
        tf.strings.as_string(x[features.TOKEN_IDS_KEY]), separator=' ')
    return tf.strings.to_hash_bucket_fast(ids, buckets) == 0

  return (examples.filter(lambda x, y: tf.logical_not(held_out(x, y))),
          examples.filter(held_out))


CLASS_WEIGHTINGS = ('balanced', 'sqrt', 'none')


def class_weights(examples: tf.data.Dataset,
                  weighting: str) -> Optional[Dict[int, float]]:
  """Class weights from the labels of `examples`.

  `balanced`: n / (k * n_c), each class weighs the same in total; `sqrt`:
  the square root of that, a milder correction; `none`: no weights. Raises
  if a class has no example at all, whatever the weighting.
  """
  if weighting not in CLASS_WEIGHTINGS:
    raise ValueError(f'class weighting must be one of {CLASS_WEIGHTINGS}, '
                     f'got {weighting!r}')
  counts = np.zeros(len(features.LABELS), dtype=np.int64)
  for labels in examples.map(lambda _, y: y).batch(4096).as_numpy_iterator():
    counts += np.bincount(labels, minlength=len(features.LABELS))
  missing = [features.LABELS[i] for i, n in enumerate(counts) if n == 0]
  if missing:
    raise ValueError(f'the training split has no examples labelled '
                     f'{", ".join(missing)}: cannot train a 3-class model')
  logging.info('Training label counts: %s',
               dict(zip(features.LABELS, counts.tolist())))
  if weighting == 'none':
    return None
  power = 1.0 if weighting == 'balanced' else 0.5
  return {i: float(counts.sum() / (len(counts) * n)) ** power
          for i, n in enumerate(counts)}


def build_model(architecture: str, vocabulary_size: int, sequence_length: int,
                hyperparameters: Dict[str, Any]) -> keras.Model:
  if architecture not in MODEL_BUILDERS:
    raise ValueError(f'architecture must be one of {sorted(MODEL_BUILDERS)}, '
                     f'got {architecture!r}')
  return MODEL_BUILDERS[architecture](
      vocabulary_size=vocabulary_size, sequence_length=sequence_length,
      **hyperparameters)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Trains the architecture named in `custom_config` and exports it."""
  config = fn_args.custom_config
  training = config['training']
  keras.utils.set_random_seed(training['seed'])
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  feature_spec = tft_output.transformed_feature_spec()
  sequence_length = feature_spec[features.TOKEN_IDS_KEY].shape[0]
  vocabulary_size = (
      tft_output.vocabulary_size_by_name(features.TOKEN_VOCABULARY_NAME) +
      config['oov_buckets'] + 1)  # + padding id 0

  strategy = strategy_lib.get_distribution_strategy(training['strategy'])
  batch_size = training['batch_size'] * strategy.num_replicas_in_sync
  fit_examples, held_out = split_for_early_stopping(
      _examples(fn_args.train_files, feature_spec),
      training['validation_fraction'])
  weights = class_weights(fit_examples, training['class_weighting'])
  fit_data = fit_examples.shuffle(
      10_000, seed=training['seed'], reshuffle_each_iteration=True).batch(
          batch_size)
  # TFX's TrainArgs.num_steps, when set, caps training at that many batches
  # in all (one long epoch); else epochs until early stopping.
  if fn_args.train_steps:
    fit_data = fit_data.repeat()
    epochs, steps_per_epoch = 1, fn_args.train_steps
  else:
    epochs, steps_per_epoch = training['max_epochs'], None
  fit_data = fit_data.prefetch(tf.data.AUTOTUNE)
  held_out_data = held_out.batch(batch_size).prefetch(tf.data.AUTOTUNE)

  with strategy.scope():
    model = build_model(config['architecture'], vocabulary_size,
                        sequence_length, config['hyperparameters'])
    model.compile(
        optimizer=keras.optimizers.Adam(training['learning_rate']),
        loss='sparse_categorical_crossentropy',
        metrics=['sparse_categorical_accuracy'])
  model.summary(print_fn=logging.info)

  started = time.monotonic()
  history = model.fit(
      fit_data,
      validation_data=held_out_data,
      epochs=epochs,
      steps_per_epoch=steps_per_epoch,
      class_weight=weights,
      verbose=2,
      callbacks=[
          keras.callbacks.EarlyStopping(
              monitor=training['early_stopping_monitor'],
              patience=training['early_stopping_patience'],
              restore_best_weights=True),
          keras.callbacks.TensorBoard(
              log_dir=fn_args.model_run_dir,
              profile_batch=tuple(training['profile_batches'])),
      ])
  train_seconds = time.monotonic() - started
  export.export_serving_model(model, tft_output, fn_args.serving_model_dir)
  training_summary = {
      'architecture': config['architecture'],
      'parameters': model.count_params(),
      'epochs': len(history.epoch),
      'train_seconds': round(train_seconds, 1),
      'replicas': strategy.num_replicas_in_sync,
      'strategy': type(strategy).__name__,
  }
  with tf.io.gfile.GFile(
      os.path.join(fn_args.model_run_dir, TRAINING_SUMMARY_FILE), 'w') as f:
    json.dump(training_summary, f)
  logging.info('Exported %s to %s', training_summary,
               fn_args.serving_model_dir)
