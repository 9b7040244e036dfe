"""TFX Trainer `run_fn`: trains one architecture and exports it.

The Trainer's `custom_config` names the architecture and carries its
hyperparameters and the training settings (finsent.configs,
docs/training.md), so the RNN and the Transformer Trainers run this same
function. So do the students: with `custom_config['distillation']` the
architecture learns from a teacher's probabilities (models.distillation)
in BulkInferrer's raw examples, through the teacher's Transform graph.

With `custom_config['num_topics']` the export serves a topic beside the
sentiment. With `topic_model` 'separate' (not for students) run_fn trains
one model per head, each on the examples labelled for it, and exports the
two as one (combined_model); with 'joint', one model with a topic head
beside the sentiment head (models.heads): each head learns from the
examples that carry its label (Transform's label_id / topic_id, -1 where
there is none; the losses and metrics skip those). Either way each head is
calibrated on its own.
"""

import contextlib
import dataclasses
import hashlib
import math
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from finsent.models import calibration
from finsent.models import distillation as distillation_lib
from finsent.models import epoch_progress
from finsent.models import export
from finsent.configs import features
from finsent.configs.training import CALIBRATIONS
from finsent.configs.training import CLASS_WEIGHTINGS
from finsent.configs.training import EARLY_STOPPING_MONITORS
from finsent.configs.training import LEARNING_RATE_SCHEDULES
from finsent.configs.training import STUDENT_TOKENS
from finsent.configs.training import TOPIC_MODELS
from finsent.models import macro_f1
from finsent.models import model_run as model_run_lib
from finsent.models import pretrained_encoder as pretrained_encoder_lib
from finsent.models import profiling
from finsent.models import rnn
from finsent.models import sparse_focal_crossentropy
from finsent.models import strategy as strategy_lib
from finsent.models import transformer
from finsent.models import word_vectors as word_vectors_lib

MODEL_BUILDERS = {
    'rnn': rnn.build_rnn_classifier,
    'transformer': transformer.build_transformer_classifier,
}
if tuple(MODEL_BUILDERS) != features.ARCHITECTURES:
  raise ImportError('MODEL_BUILDERS must build exactly features.ARCHITECTURES')
# The Adam learning rate's name among tuned hyperparameters (models.tuner).
LEARNING_RATE = 'learning_rate'
# The preset a fine-tuning search tuned, among its values (models.tuner).
TUNED_PRESET = 'pretrained_encoder'
# Each builder's token embedding, which word vectors initialise.
TOKEN_EMBEDDINGS = {
    'rnn': lambda model: model.get_layer('token_embedding'),
    'transformer': lambda model: model.get_layer(
        'token_and_position_embedding').token_embedding,
}


def model_input_keys(feature_spec: Dict[str, Any],
                     pretrained_encoder: Optional[str]) -> List[str]:
  """The transformed features the model reads: `token_ids`, or with a
  pretrained encoder its encoder_* features, which Transform must have
  written with that encoder's tokenizer."""
  if not pretrained_encoder:
    return [features.TOKEN_IDS_KEY]
  keys = pretrained_encoder_lib.input_keys(feature_spec)
  if not keys:
    raise ValueError(
        f'the Transform output has no {pretrained_encoder_lib.FEATURE_PREFIX}'
        f'* features for the pretrained encoder {pretrained_encoder}: run '
        'Transform with the same pretrained_encoder')
  return keys


def head_labels(num_topics: int) -> Dict[str, str]:
  """Each head of a model with a topic head and the transformed label it
  learns from; {} for a sentiment-only model (one output, label_id)."""
  if not num_topics:
    return {}
  return {features.SENTIMENT_HEAD: features.LABEL_ID_KEY,
          features.TOPIC_HEAD: features.TOPIC_ID_KEY}


def transformed_examples(file_patterns: List[str],
                         feature_spec: Dict[str, Any],
                         input_keys: List[str],
                         num_topics: int = 0) -> tf.data.Dataset:
  """Unbatched ({feature: ids}, label_id) pairs from transformed TFRecords:
  the `input_keys` features, and `token_ids`, which the held-out split
  hashes whatever the model reads (`model_inputs` then keeps the model's).
  With `num_topics` the targets are {head: label id} (head_labels), -1
  where an example has no label for that head.

  Sharded between multi-worker replicas by example, not by file: Beam
  writes as many files as it likes, often fewer than there are workers.
  """
  files = sorted(f for p in file_patterns for f in tf.io.gfile.glob(p))
  if not files:
    raise ValueError(f'no transformed examples match {file_patterns}')
  heads = head_labels(num_topics)
  if num_topics and features.TOPIC_ID_KEY not in feature_spec:
    raise ValueError(
        f'a model with a topic head learns from Transform\'s '
        f'{features.TOPIC_ID_KEY}, which this Transform output lacks: its '
        'data has no topics')
  keys = sorted({features.TOKEN_IDS_KEY, *input_keys})
  spec = {k: feature_spec[k] for k in [*keys, features.LABEL_ID_KEY,
                                       *heads.values()]}
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)

  def pair(x):
    targets = ({head: x[key] for head, key in heads.items()} if heads
               else x[features.LABEL_ID_KEY])
    return {k: x[k] for k in keys}, targets

  return tf.data.TFRecordDataset(files, compression_type='GZIP').map(
      lambda record: tf.io.parse_single_example(record, spec)).map(
          pair).with_options(options)


def model_inputs(examples: tf.data.Dataset,
                 input_keys: List[str]) -> tf.data.Dataset:
  """(features, label) pairs with only the features the model reads."""
  return examples.map(lambda x, y: ({k: x[k] for k in input_keys}, y))


def head_examples(examples: tf.data.Dataset, head: str) -> tf.data.Dataset:
  """The examples of transformed_examples (targets by head) labelled for
  `head`, with that head's label id as their one target."""
  return examples.filter(lambda _, y: y[head] >= 0).map(
      lambda x, y: (x, y[head]))


def split_for_early_stopping(examples: tf.data.Dataset,
                             validation_fraction: float
                             ) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
  """Holds out a hash-chosen share of the training examples.

  Early stopping watches this held-out part of the train split, so the eval
  split stays unseen until the Evaluator measures it. The choice hashes the
  whole-word token ids, so it does not depend on the order Beam wrote the
  examples in, duplicate texts land on the same side, and so do texts that
  differ only in a ticker, URL or number (the same placeholders); both
  architectures, a pretrained encoder's too, hold out the same examples.
  """
  buckets = max(2, round(1 / validation_fraction))

  def held_out(x, _):
    ids = tf.strings.reduce_join(
        tf.strings.as_string(x[features.TOKEN_IDS_KEY]), separator=' ')
    return tf.strings.to_hash_bucket_fast(ids, buckets) == 0

  return (examples.filter(lambda x, y: tf.logical_not(held_out(x, y))),
          examples.filter(held_out))


# The class names of each head, in the order of its outputs.
HEAD_CLASSES = {features.SENTIMENT_HEAD: features.LABELS,
                features.TOPIC_HEAD: features.TOPICS}


def class_weights(examples: tf.data.Dataset, weighting: str,
                  head: str = features.SENTIMENT_HEAD
                  ) -> Optional[Dict[int, float]]:
  """Class weights from the labels of `head` (the sentiment's by default)
  in `examples`.

  `balanced`: n / (k * n_c), each class weighs the same in total; `sqrt`:
  the square root of that, a milder correction; `none`: no weights. Raises
  if a class has no example at all, whatever the weighting.
  """
  if weighting not in CLASS_WEIGHTINGS:
    raise ValueError(f'class weighting must be one of {CLASS_WEIGHTINGS}, '
                     f'got {weighting!r}')
  names = HEAD_CLASSES[head]
  counts = np.zeros(len(names), dtype=np.int64)
  labelled = examples.map(
      lambda _, y: y[head] if isinstance(y, dict) else y)
  for labels in labelled.batch(4096).as_numpy_iterator():
    # -1: an example without this head's label.
    counts += np.bincount(labels[labels >= 0], minlength=len(names))
  missing = [names[i] for i, n in enumerate(counts) if n == 0]
  if missing:
    raise ValueError(f'the training split has no examples labelled '
                     f'{", ".join(missing)}: cannot train a '
                     f'{len(names)}-class {head} head')
  logging.info('Training label counts (%s): %s', head,
               dict(zip(names, counts.tolist())))
  if weighting == 'none':
    return None
  power = 1.0 if weighting == 'balanced' else 0.5
  return {i: float(counts.sum() / (len(counts) * n)) ** power
          for i, n in enumerate(counts)}


# Bucket bounds of group_by_length, in real pieces ([CLS] and [SEP]
# included): Twitter-FNS headlines run to a median of 26, Reuters sentences
# to 54.
LENGTH_BUCKET_BOUNDARIES = (16, 24, 32, 40, 48, 64, 96)


def shuffled_batches(examples: tf.data.Dataset, batch_size: int, seed: int,
                     static_shapes: bool, buffer_size: int,
                     length_mask_key: Optional[str] = None
                     ) -> tf.data.Dataset:
  """Training batches, reshuffled each epoch through a buffer of
  `buffer_size` examples (as many as `examples` holds: a full shuffle).

  With `length_mask_key` (a 0/1 padding mask feature) the shuffled
  examples are batched by length bucket (LENGTH_BUCKET_BOUNDARIES): each
  batch holds texts of similar length, so a model that trims padding
  (models.trim_padding) computes little of it. Each bucket's last batch of
  an epoch may be partial.

  With `static_shapes` (a TPU) the last partial batch is dropped and every
  shape is checked to be fixed, so XLA compiles the training step once.
  """
  shuffled = examples.shuffle(buffer_size, seed=seed,
                              reshuffle_each_iteration=True)
  if length_mask_key:
    batches = shuffled.bucket_by_sequence_length(
        lambda x, _: tf.reduce_sum(tf.cast(x[length_mask_key] != 0,
                                           tf.int32)),
        bucket_boundaries=list(LENGTH_BUCKET_BOUNDARIES),
        bucket_batch_sizes=[batch_size] * (len(LENGTH_BUCKET_BOUNDARIES) + 1),
        drop_remainder=static_shapes)
  else:
    batches = shuffled.batch(batch_size, drop_remainder=static_shapes)
  if static_shapes:
    strategy_lib.require_static_shapes(batches.element_spec)
  return batches


def token_vocabulary(tft_output: tft.TFTransformOutput) -> List[str]:
  """Transform's token vocabulary: token_ids i + 1 is its i-th token."""
  return [token.decode('utf-8', errors='replace') for token in
          tft_output.vocabulary_by_name(features.TOKEN_VOCABULARY_NAME)]


def build_model(architecture: str, vocabulary_size: int, sequence_length: int,
                hyperparameters: Dict[str, Any],
                pretrained_encoder: Optional[str] = None,
                input_key: str = features.TOKEN_IDS_KEY,
                num_topics: int = 0,
                head: str = features.SENTIMENT_HEAD) -> keras.Model:
  """The architecture's model; with `pretrained_encoder` (a keras-hub
  preset) the Transformer is that encoder under a classification head.
  A model trained from scratch reads `input_key`: Transform's `token_ids`,
  or a student's the teacher's pieces. Its one output answers `head`'s
  classes (HEAD_CLASSES); with `num_topics`, a topic head beside the
  sentiment head (models.heads)."""
  num_classes = len(HEAD_CLASSES[head])
  if num_topics and head != features.SENTIMENT_HEAD:
    raise ValueError(f'a topic head goes beside the sentiment head, not '
                     f'beside a {head} head')
  if architecture not in MODEL_BUILDERS:
    raise ValueError(f'architecture must be one of {sorted(MODEL_BUILDERS)}, '
                     f'got {architecture!r}')
  if pretrained_encoder:
    if architecture != 'transformer':
      raise ValueError(f'a pretrained encoder replaces the transformer, not '
                       f'the {architecture}')
    return pretrained_encoder_lib.build_pretrained_encoder_classifier(
        pretrained_encoder, sequence_length, num_classes=num_classes,
        num_topics=num_topics, **hyperparameters)
  return MODEL_BUILDERS[architecture](
      vocabulary_size=vocabulary_size, sequence_length=sequence_length,
      input_key=input_key, num_classes=num_classes, num_topics=num_topics,
      **hyperparameters)


def combined_model(models: Dict[str, keras.Model]) -> keras.Model:
  """One model answering each head of `models` (head -> a model whose one
  output answers it, all reading the same named inputs): its outputs a
  dict by head, as a model with a topic head beside the sentiment head
  has, so calibration, the export and every reader of it see one model.
  """
  first = next(iter(models.values()))
  for head, model in models.items():
    if isinstance(model.output, dict):
      raise ValueError(f'the {head} model has several outputs '
                       f'{sorted(model.output)}: each must answer one head')
    if sorted(model.input) != sorted(first.input):
      raise ValueError(f'the {head} model reads {sorted(model.input)}, not '
                       f'{sorted(first.input)}: the models must read the '
                       'same inputs')
  # Each under its head's name: the builders name their models alike.
  inputs = {key: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype,
                             name=key) for key, tensor in first.input.items()}
  return keras.Model(inputs, {
      head: keras.Model(model.input, model.output, name=f'{head}_model')(
          inputs) for head, model in models.items()})


def predict_probabilities(model: keras.Model, examples: tf.data.Dataset,
                          head: Optional[str] = None
                          ) -> Tuple[np.ndarray, np.ndarray]:
  """Probabilities [N, K] and labels [N] of unbatched (features, label)
  examples; of `head` for a model with several (the examples' labels a
  dict by head), and then only of the examples labelled for it.

  A plain forward pass per batch, outside `model.predict`: under a
  multi-worker strategy that would shard the examples and need every worker
  in step, where this gives every worker the same, whole answer.
  """
  probabilities, labels = [], []
  for x, y in examples.batch(1024):
    predicted = model(x, training=False)
    if head:
      predicted, y = predicted[head], y[head]
    probabilities.append(keras.ops.convert_to_numpy(predicted))
    labels.append(y.numpy())
  if not labels:
    width = (model.output[head] if head else model.output).shape[-1]
    return np.zeros((0, width), np.float32), np.zeros(0, np.int64)
  probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
  if head:
    labelled = labels >= 0
    return probabilities[labelled], labels[labelled]
  return probabilities, labels


def calibrate(model: keras.Model, held_out: tf.data.Dataset,
              eval_examples: tf.data.Dataset, method: str) -> Dict[str, Any]:
  """Fits the export's temperature on the held-out examples.

  The held-out share of the train split, not the eval split: the Evaluator
  measures the calibrated model on the eval split, which must stay unseen
  for its ECE to be honest. NLL and ECE before and after are reported for
  both. With `method` 'none' the temperature is 1 (the model's own
  probabilities) and the report shows how calibrated they are.

  A model with a topic head: the sentiment head's report, and under
  `topic` the topic head's, each over the examples labelled for it.
  """
  if method not in CALIBRATIONS:
    raise ValueError(f'calibration must be one of {CALIBRATIONS}'
                     f', got {method!r}')
  if not isinstance(model.output, dict):
    return _calibrate_head(model, held_out, eval_examples, method, None)
  return {**_calibrate_head(model, held_out, eval_examples, method,
                            features.SENTIMENT_HEAD),
          features.TOPIC_HEAD: _calibrate_head(
              model, held_out, eval_examples, method, features.TOPIC_HEAD)}


def _calibrate_head(model: keras.Model, held_out: tf.data.Dataset,
                    eval_examples: tf.data.Dataset, method: str,
                    head: Optional[str]) -> Dict[str, Any]:
  """calibrate, for one head (None: the one output)."""
  held_out_probabilities, held_out_labels = predict_probabilities(
      model, held_out, head)
  if method == 'temperature' and not len(held_out_labels):
    raise ValueError(
        'no held-out examples to fit the temperature on: the train split is '
        'too small for its validation_fraction; use more data or '
        '--calibration none')
  temperature = (round(calibration.fit_temperature(held_out_probabilities,
                                                   held_out_labels), 4)
                 if method == 'temperature' else 1.0)
  at_bound = calibration.at_range_bound(temperature)
  if at_bound:
    logging.warning(
        'The fitted temperature %s is at the end of its range %s: the '
        'held-out examples (%d) cannot calibrate this model; its exported '
        'probabilities are near one-hot or near uniform.', temperature,
        calibration.TEMPERATURE_RANGE, len(held_out_labels))
  return {
      'temperature': temperature,
      'at_range_bound': at_bound,
      'held_out': (calibration.calibration_report(
          held_out_probabilities, held_out_labels, temperature)
                   if len(held_out_labels) else None),
      'eval': calibration.calibration_report(
          *predict_probabilities(model, eval_examples, head), temperature),
  }


def weights_digest(model: keras.Model) -> str:
  """SHA-256 of the model's weights: equal on every worker of a synchronous
  multi-worker run, and a name for the exported model's parameters."""
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
  return digest.hexdigest()


@dataclasses.dataclass
class TrainingInputs:
  """What fitting needs, prepared alike for the Trainer and the Tuner."""
  tft_output: tft.TFTransformOutput
  feature_spec: Dict[str, Any]
  vocabulary_size: int  # padding id 0 and the OOV buckets included
  sequence_length: int
  pretrained_encoder: Optional[str]  # a keras-hub preset, or None
  # Rows of the token embedding that start from pretrained word vectors
  # (models.word_vectors.embedding_rows), or None.
  word_vector_rows: Optional[Dict[int, np.ndarray]]
  input_keys: List[str]  # the transformed features the model reads
  batch_size: int  # global: per replica x replicas
  fit_data: tf.data.Dataset  # batched, shuffled
  held_out: tf.data.Dataset  # unbatched, for calibration
  held_out_data: tf.data.Dataset  # batched, for early stopping
  validation_steps: Optional[int]
  class_weight: Optional[Dict[int, float]]
  epochs: int
  steps_per_epoch: Optional[int]  # set when TrainArgs.num_steps is
  batches_per_epoch: int
  # A student's settings (custom_config['distillation']), or None. Then
  # fit_data and held_out_data hold packed targets (models.distillation)
  # and held_out their labelled examples, as calibrate reads them.
  distillation: Optional[Dict[str, Any]] = None
  # A student's examples: labelled and unlabelled fit rows, held-out rows.
  student_rows: Optional[Dict[str, int]] = None
  # The teacher's token embeddings [vocabulary, width], which a student
  # reading its pieces starts from (compile_model), or None.
  teacher_embeddings: Optional[np.ndarray] = None
  # Classes of the topic head beside the sentiment head; 0: none.
  num_topics: int = 0
  # With a topic head, each head's class weights ({class id: weight}, or
  # None), applied in its loss (class_weight is then None).
  head_class_weights: Optional[Dict[str, Optional[Dict[int, float]]]] = None
  # The head the model's one output answers: the sentiment's, or another's
  # for one model of several (topic_model 'separate').
  head: str = features.SENTIMENT_HEAD


def count_examples(examples: tf.data.Dataset) -> int:
  """How many elements an unbatched dataset holds (one pass over it)."""
  return int(examples.reduce(0, lambda n, _: n + 1))


def teacher_examples(file_patterns: List[str],
                     tft_output: tft.TFTransformOutput,
                     settings: Dict[str, Any], input_key: str,
                     num_topics: int) -> tf.data.Dataset:
  """distillation_examples of `file_patterns` with a student's settings."""
  return distillation_lib.distillation_examples(
      file_patterns, tft_output, settings['teacher_probabilities_key'],
      settings['unlabelled_split'], input_key, num_topics,
      settings['teacher_topic_probabilities_key'])


def student_examples(fn_args: tfx.components.FnArgs,
                     tft_output: tft.TFTransformOutput,
                     training: Dict[str, Any], settings: Dict[str, Any],
                     input_key: str, num_topics: int = 0
                     ) -> Tuple[tf.data.Dataset, tf.data.Dataset,
                                Dict[str, int]]:
  """A student's fit and held-out examples, unbatched with packed targets
  (models.distillation.distillation_examples; by head with `num_topics`),
  and their counts.

  The held-out share is of the labelled train examples, chosen as for any
  model (split_for_early_stopping); the unlabelled texts are fit data only,
  mixed in at random in proportion to their number.
  """
  if training['class_weighting'] != 'none':
    # Keras's class_weight cannot weigh packed targets, and the teacher's
    # probabilities already carry its view of the classes.
    raise ValueError(
        f'class weighting {training["class_weighting"]!r} does not apply to '
        "a student, which learns from the teacher's probabilities: use "
        'class weighting none')
  for name in ('label_smoothing', 'focal_gamma'):
    if training[name]:
      logging.warning('A student ignores %s (%s): its loss is the '
                      'distillation loss', name, training[name])
  train = teacher_examples(fn_args.train_files, tft_output, settings,
                           input_key, num_topics)
  fit_labelled, held_out = split_for_early_stopping(
      train.filter(distillation_lib.has_label),
      training['validation_fraction'])
  unlabelled = train.filter(
      lambda x, y: tf.logical_not(distillation_lib.has_label(x, y)))
  fit_labelled, held_out, unlabelled = (
      model_inputs(examples, [input_key])
      for examples in (fit_labelled, held_out, unlabelled))
  # The first pass runs the Transform graph and fills the cache; the
  # others read it.
  rows = {name: count_examples(examples) for name, examples
          in (('fit_labelled', fit_labelled), ('fit_unlabelled', unlabelled),
              ('held_out', held_out))}
  logging.info('Student examples: %s', rows)
  # Refuses a fit share missing a class, as for any model.
  class_weights(distillation_lib.labelled_only(fit_labelled), 'none')
  fit = fit_labelled
  if rows['fit_unlabelled']:
    # Concatenated, the unlabelled texts would come after every labelled
    # one, past what a shuffle buffer shorter than the fit share
    # (shuffle_buffer_size) mixes.
    fit = tf.data.Dataset.sample_from_datasets(
        [fit_labelled, unlabelled],
        weights=[float(rows['fit_labelled']), float(rows['fit_unlabelled'])],
        seed=training['seed'])
  return fit, held_out, rows


def prepare_training(fn_args: tfx.components.FnArgs,
                     strategy: tf.distribute.Strategy,
                     head: Optional[str] = None) -> TrainingInputs:
  """Reads Transform's output and batches the train split for `strategy`:
  the fit share and the held-out share that early stopping watches.

  For a student (custom_config['distillation']) the train split is
  BulkInferrer's raw examples (with an unlabelled split, maybe), read
  through the teacher's Transform graph (student_examples). With `head`
  (of data with topics), the examples labelled for that head, for a model
  that answers it alone (head_examples).
  """
  config = fn_args.custom_config
  training = config['training']
  settings = config.get('distillation')
  tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  feature_spec = tft_output.transformed_feature_spec()
  replicas = strategy.num_replicas_in_sync
  batch_size = training['batch_size'] * replicas
  pretrained_encoder = config['pretrained_encoder']
  input_keys = model_input_keys(feature_spec, pretrained_encoder)
  sequence_length = feature_spec[input_keys[0]].shape[0]
  if pretrained_encoder:
    pretrained_encoder_lib.check_transform_tokenization(
        tft_output, pretrained_encoder, sequence_length)
  student_rows, teacher_embeddings, head_weights = None, None, None
  num_topics = config.get('num_topics', 0)
  if num_topics not in (0, len(features.TOPICS)):
    raise ValueError(f"custom_config['num_topics'] is {num_topics}: a topic "
                     f'head answers the {len(features.TOPICS)} topics of '
                     'features.TOPICS, or 0 for none')
  if head is not None and (head not in HEAD_CLASSES or not num_topics or
                           settings):
    raise ValueError(
        f'a model of one head ({head!r}) is one of the separate models of a '
        f'Trainer with topics ({sorted(HEAD_CLASSES)}), not a student')
  vocabulary_size = (
      tft_output.vocabulary_size_by_name(features.TOKEN_VOCABULARY_NAME)
      + config['oov_buckets'] + 1)
  if settings:
    if pretrained_encoder:
      raise ValueError(f'a student is trained from scratch, not from the '
                       f'pretrained encoder {pretrained_encoder}')
    if settings['tokens'] not in STUDENT_TOKENS:
      raise ValueError(f'a student reads one of {STUDENT_TOKENS}, not '
                       f'{settings["tokens"]!r}')
    if settings['tokens'] == 'teacher_pieces':
      teacher = settings['teacher_encoder']
      # Refuses a Transform output without the teacher's features.
      model_input_keys(feature_spec, teacher)
      input_keys = [pretrained_encoder_lib.TOKEN_IDS_KEY]
      sequence_length = feature_spec[input_keys[0]].shape[0]
      pretrained_encoder_lib.check_transform_tokenization(
          tft_output, teacher, sequence_length)
      if training['word_vectors']:
        # Word vectors' rows are Transform's word ids, not the teacher's.
        raise ValueError(
            f"a student reading the teacher's pieces starts from the "
            f"teacher's embeddings, not from the word vectors "
            f"{training['word_vectors']}: use student tokens words with "
            'word vectors')
      teacher_embeddings = pretrained_encoder_lib.token_embeddings(teacher)
      vocabulary_size = len(teacher_embeddings)
    fit_examples, held_out, student_rows = student_examples(
        fn_args, tft_output, training, settings, input_keys[0], num_topics)
    weights = None
  else:
    examples = transformed_examples(fn_args.train_files, feature_spec,
                                    input_keys, num_topics)
    if head:
      examples, num_topics = head_examples(examples, head), 0
    fit_examples, held_out = (
        model_inputs(examples, input_keys) for examples in
        split_for_early_stopping(examples, training['validation_fraction']))
    if num_topics:
      # Keras's class_weight weighs the classes of one output: each head's
      # loss weighs its own (compile_model).
      # The sentiment head's counts are checked whatever the weighting, as
      # for a model without a topic head; the topic head's when weighed.
      head_weights = {head: class_weights(fit_examples,
                                          training['class_weighting'], head)
                      for head in head_labels(num_topics)
                      if head == features.SENTIMENT_HEAD or
                      training['class_weighting'] != 'none'}
      weights = None
    else:
      weights = class_weights(fit_examples, training['class_weighting'],
                              head or features.SENTIMENT_HEAD)
  tpu = isinstance(strategy, tf.distribute.TPUStrategy)
  # Grouping pays only where the model trims padding, which it cannot on
  # a TPU (run_fn).
  length_mask_key = (pretrained_encoder_lib.PADDING_MASK_KEY
                     if pretrained_encoder and not tpu and
                     training.get('group_by_length') else None)
  fit_rows = (student_rows['fit_labelled'] + student_rows['fit_unlabelled']
              if student_rows else count_examples(fit_examples))
  fit_data = shuffled_batches(
      fit_examples, batch_size, training['seed'], static_shapes=tpu,
      buffer_size=training['shuffle_buffer_size'] or fit_rows,
      length_mask_key=length_mask_key)
  # TFX's TrainArgs.num_steps, when set, caps training at that many batches
  # in all (one long epoch); else epochs until early stopping.
  if fn_args.train_steps:
    fit_data = fit_data.repeat()
    epochs, steps_per_epoch = 1, fn_args.train_steps
    batches_per_epoch = steps_per_epoch
  else:
    epochs, steps_per_epoch = training['max_epochs'], None
    batches_per_epoch = math.ceil(fit_rows / batch_size)
  held_out_data, validation_steps = held_out.batch(batch_size), None
  word_vector_rows = None
  if training['word_vectors']:
    word_vector_rows = word_vectors_lib.embedding_rows(
        training['word_vectors'], token_vocabulary(tft_output))
    logging.info('Word vectors %s: %d of the vocabulary\'s tokens',
                 training['word_vectors'], len(word_vector_rows))
  if replicas > 1:
    # Keras 3 builds a distributed model by reducing the first validation
    # batch over the replicas, which fails when a partial batch splits
    # unevenly; so every batch is full, the last one completed from the
    # start of the held-out examples.
    count = (student_rows['held_out'] if student_rows else
             count_examples(held_out))
    validation_steps = max(1, math.ceil(count / batch_size))
    held_out_data = held_out.repeat().batch(batch_size)
  return TrainingInputs(
      tft_output=tft_output,
      feature_spec=feature_spec,
      vocabulary_size=vocabulary_size,
      sequence_length=sequence_length,
      pretrained_encoder=pretrained_encoder,
      word_vector_rows=word_vector_rows,
      input_keys=input_keys,
      batch_size=batch_size,
      fit_data=fit_data.prefetch(tf.data.AUTOTUNE),
      held_out=(distillation_lib.labelled_only(held_out) if settings
                else held_out),
      held_out_data=held_out_data.prefetch(tf.data.AUTOTUNE),
      validation_steps=validation_steps,
      class_weight=weights,
      head_class_weights=head_weights,
      epochs=epochs,
      steps_per_epoch=steps_per_epoch,
      batches_per_epoch=batches_per_epoch,
      distillation=settings,
      student_rows=student_rows,
      teacher_embeddings=teacher_embeddings,
      num_topics=num_topics,
      head=head or features.SENTIMENT_HEAD)


def learning_rate_schedule(training: Dict[str, Any], learning_rate: float,
                           inputs: TrainingInputs):
  """Adam's learning rate, by `training['learning_rate_schedule']`.

  `constant`: `learning_rate` throughout. `warmup_cosine`: a linear rise
  from 0 to `learning_rate` over `warmup_epochs` epochs (Goyal et al. 2017;
  BERT), then a cosine decay to 0 at the end of the last epoch fit can run
  (Loshchilov and Hutter 2017, SGDR). A Tuner trial, which stops sooner,
  runs the first epochs of the same schedule.
  """
  name = training['learning_rate_schedule']
  if name not in LEARNING_RATE_SCHEDULES:
    raise ValueError(f'learning_rate_schedule must be one of '
                     f'{LEARNING_RATE_SCHEDULES}, got {name!r}')
  if name == 'constant':
    return learning_rate
  steps = inputs.epochs * inputs.batches_per_epoch
  warmup_steps = min(steps - 1, round(training['warmup_epochs'] *
                                      inputs.batches_per_epoch))
  return keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, warmup_target=learning_rate,
      warmup_steps=warmup_steps, decay_steps=steps - warmup_steps)


def compile_model(architecture: str, inputs: TrainingInputs,
                  hyperparameters: Dict[str, Any], learning_rate: float,
                  training: Dict[str, Any]) -> keras.Model:
  """The architecture's model, compiled for training with the peak
  `learning_rate` and `training`'s schedule, label smoothing and focal
  weighting; call it in the strategy's scope.

  A student (inputs.distillation) is compiled with the distillation loss
  and the masked metrics of packed targets, under the same names, and is
  refused when it has more than `max_student_parameters` parameters.
  """
  model = build_model(architecture, inputs.vocabulary_size,
                      inputs.sequence_length, hyperparameters,
                      inputs.pretrained_encoder, inputs.input_keys[0],
                      inputs.num_topics, inputs.head)
  settings = inputs.distillation
  if settings:
    parameters, limit = (model.count_params(),
                         settings['max_student_parameters'])
    if parameters > limit:
      raise ValueError(
          f'the {architecture} student has {parameters:,} parameters, more '
          f'than max_student_parameters {limit:,}: a student must be small; '
          'shrink its hyperparameters')
  if inputs.word_vector_rows:
    scale = word_vectors_lib.initialize_embedding(
        TOKEN_EMBEDDINGS[architecture](model), inputs.word_vector_rows)
    logging.info('Token embedding: %d rows from word vectors, scaled by '
                 '%.3g', len(inputs.word_vector_rows), scale)
  if inputs.teacher_embeddings is not None:
    embedding = TOKEN_EMBEDDINGS[architecture](model)
    projection = pretrained_encoder_lib.project_embeddings(
        inputs.teacher_embeddings, embedding.output_dim)
    scale = word_vectors_lib.initialize_embedding(
        embedding, dict(enumerate(projection)))
    logging.info("Token embedding: the teacher's, projected to %d wide, "
                 'scaled by %.3g', embedding.output_dim, scale)
  compile_for_training(model, inputs, learning_rate, training)
  return model


def compile_for_training(model: keras.Model, inputs: TrainingInputs,
                         learning_rate: float, training: Dict[str, Any]
                         ) -> None:
  """Compiles `model` (compile_model's) with its loss and metrics and Adam
  at the peak `learning_rate` under `training`'s schedule; again after a
  change of what is trainable (fit_head_first)."""
  settings = inputs.distillation
  classes = {head: len(names) for head, names in HEAD_CLASSES.items()}
  if settings:
    def student_loss():
      return distillation_lib.DistillationLoss(
          settings['temperature'], settings['alpha'],
          settings['hard_term_mean'])

    def student_metrics(n):
      return [distillation_lib.MaskedSparseCategoricalAccuracy(),
              distillation_lib.MaskedSparseMacroF1Score(n)]
    if inputs.num_topics:
      # Each head learns the teacher's view of every text and the labels
      # of the texts carrying its own.
      loss = {head: student_loss() for head in classes}
      metrics = {head: student_metrics(n) for head, n in classes.items()}
    else:
      loss = student_loss()
      metrics = student_metrics(len(features.LABELS))
  elif inputs.num_topics:
    # Each head learns from, and is measured on, the examples carrying its
    # label (-1 where one has none).
    head_weights = inputs.head_class_weights or {}
    loss = {head: sparse_focal_crossentropy.SparseFocalCrossentropy(
        n, training['label_smoothing'], training['focal_gamma'],
        ignore_class=-1, class_weights=(
            [head_weights[head][i] for i in range(n)]
            if head_weights.get(head) else None))
            for head, n in classes.items()}
    metrics = {head: [macro_f1.SparseAccuracy(ignore_class=-1),
                      macro_f1.SparseMacroF1Score(n, ignore_class=-1)]
               for head, n in classes.items()}
  else:
    loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
        classes[inputs.head], training['label_smoothing'],
        training['focal_gamma'])
    metrics = ['sparse_categorical_accuracy',
               macro_f1.SparseMacroF1Score(classes[inputs.head])]
  model.compile(
      optimizer=keras.optimizers.Adam(
          learning_rate_schedule(training, learning_rate, inputs)),
      loss=loss, metrics=metrics)


def fit(model: keras.Model, inputs: TrainingInputs, epochs: int,
        callbacks: List[keras.callbacks.Callback],
        verbose: int) -> keras.callbacks.History:
  """model.fit on the fit share for `epochs`, watching the held-out one."""
  return model.fit(
      inputs.fit_data,
      validation_data=inputs.held_out_data,
      validation_steps=inputs.validation_steps,
      epochs=epochs,
      steps_per_epoch=inputs.steps_per_epoch,
      class_weight=inputs.class_weight,
      # shuffled_batches reshuffles each epoch; Keras cannot shuffle a
      # tf.data.Dataset (it warns that shuffle=True is ignored).
      shuffle=False,
      verbose=verbose,
      callbacks=callbacks)


def fit_head_first(model: keras.Model, inputs: TrainingInputs,
                   learning_rate: float, training: Dict[str, Any],
                   strategy: tf.distribute.Strategy,
                   callbacks: List[keras.callbacks.Callback],
                   verbose: int) -> float:
  """LP-FT (Kumar et al. 2022): `training['head_epochs']` epochs of the
  head alone on the frozen pretrained encoder at the constant
  `head_learning_rate`, then the model recompiled whole for fine-tuning at
  `learning_rate` under the schedule. Returns the head's seconds."""
  with strategy.scope():
    pretrained_encoder_lib.set_encoder_trainable(model, False)
    compile_for_training(model, inputs, training['head_learning_rate'],
                         {**training, 'learning_rate_schedule': 'constant'})
  started = time.monotonic()
  fit(model, inputs, training['head_epochs'], callbacks, verbose)
  seconds = time.monotonic() - started
  with strategy.scope():
    pretrained_encoder_lib.set_encoder_trainable(model, True)
    compile_for_training(model, inputs, learning_rate, training)
  return seconds


def early_stopping_monitor(training: Dict[str, Any],
                           num_topics: int = 0) -> str:
  """The held-out figure early stopping watches: `early_stopping_monitor`;
  for a model with a topic head, its loss is both heads' and a metric is
  the sentiment head's (Keras names it `val_sentiment_<metric>`)."""
  monitor = training['early_stopping_monitor']
  if monitor not in EARLY_STOPPING_MONITORS:
    raise ValueError(f'early_stopping_monitor must be one of '
                     f'{EARLY_STOPPING_MONITORS}, got {monitor!r}')
  if num_topics and monitor != 'val_loss':
    return monitor.replace('val_', f'val_{features.SENTIMENT_HEAD}_', 1)
  return monitor


def early_stopping(training: Dict[str, Any],
                   num_topics: int = 0) -> keras.callbacks.Callback:
  """Stops when the held-out `early_stopping_monitor` has not improved for
  `early_stopping_patience` epochs, and restores the best epoch."""
  monitor = early_stopping_monitor(training, num_topics)
  return keras.callbacks.EarlyStopping(
      monitor=monitor, mode='min' if monitor == 'val_loss' else 'max',
      patience=training['early_stopping_patience'],
      restore_best_weights=True)


def _model_name(architecture: str, pretrained_encoder: Optional[str]) -> str:
  return (f'the pretrained encoder {pretrained_encoder}' if pretrained_encoder
          else f'a {architecture} trained from scratch')


def configured_hyperparameters(config: Dict[str, Any]) -> Dict[str, Any]:
  """The builder's configured arguments; with word vectors the token
  embedding is as wide as they are."""
  hyperparameters = dict(config['hyperparameters'])
  word_vectors = config['training']['word_vectors']
  if word_vectors:
    hyperparameters['embedding_dim'] = word_vectors_lib.dimension(word_vectors)
  return hyperparameters


def tuned_settings(config: Dict[str, Any],
                   tuned: Optional[Dict[str, Any]]
                   ) -> Tuple[Dict[str, Any], float]:
  """The model's hyperparameters and the one-replica learning rate.

  `tuned` is the Tuner's best `keras_tuner.HyperParameters` config (TFX's
  `fn_args.hyperparameters`); its values replace the configured ones
  (configured_hyperparameters).
  """
  hyperparameters = configured_hyperparameters(config)
  learning_rate = config['training']['learning_rate']
  word_vectors = config['training']['word_vectors']
  if tuned:
    values = dict(tuned['values'])
    tuned_preset = values.pop(TUNED_PRESET, None)
    trained_preset = config['pretrained_encoder']
    if tuned_preset != trained_preset:
      architecture = config['architecture']
      raise ValueError(
          f'the Tuner searched for {_model_name(architecture, tuned_preset)}, '
          f'but this Trainer trains '
          f'{_model_name(architecture, trained_preset)}')
    learning_rate = values.pop(LEARNING_RATE, learning_rate)
    unknown = sorted(set(values) - set(hyperparameters))
    if unknown:
      raise ValueError(
          f'the tuned hyperparameters {unknown} are not arguments of the '
          f'{config["architecture"]} builder ({sorted(hyperparameters)})')
    if (word_vectors and values.get('embedding_dim') !=
        hyperparameters['embedding_dim']):
      raise ValueError(
          f'the Tuner searched embedding_dim {values.get("embedding_dim")}, '
          f'but the word vectors {word_vectors} are '
          f'{hyperparameters["embedding_dim"]}-dimensional: tune with the '
          'same word vectors')
    hyperparameters.update(values)
  if word_vectors and 'num_heads' in hyperparameters:
    problem = word_vectors_lib.heads_problem(
        word_vectors, hyperparameters['embedding_dim'],
        hyperparameters['num_heads'])
    if problem:
      raise word_vectors_lib.WordVectorsError(problem)
  return hyperparameters, learning_rate


def student_summary(model: keras.Model, settings: Dict[str, Any],
                    rows: Dict[str, int],
                    eval_examples: tf.data.Dataset) -> Dict[str, Any]:
  """The training summary's `distillation` entry: the student's settings,
  its fit and held-out rows, and how often its argmax is the teacher's on
  the eval split."""
  agreement = distillation_lib.teacher_agreement(model, eval_examples)
  return {
      'temperature': settings['temperature'],
      'alpha': settings['alpha'],
      'hard_term_mean': settings['hard_term_mean'],
      'tokens': settings['tokens'],
      **rows,
      'eval_examples': agreement['examples'],
      'eval_teacher_agreement': agreement['argmax_agreement'],
      # With a topic head: how often its argmax is the teacher's topic.
      'eval_topic_teacher_agreement': agreement.get(
          'topic_argmax_agreement'),
  }


@contextlib.contextmanager
def _without_arithmetic_optimization():
  """Grappler's arithmetic optimizer off while the functions traced inside
  run, back to its setting after.

  Its AddOpsRewrite turns the sum of a two-head model's losses into an
  AccumulateNV2 with a per-step TemporaryVariable, and fine-tuning the
  encoder with both heads failed with `AlreadyExistsError: Resource
  __per_step_0/.../AddOpsRewrite_add_5/tmp_var` in its second epoch (TF's
  open tensorflow/tensorflow#23780, whose workaround this is).
  """
  key = 'arithmetic_optimization'
  before = tf.config.optimizer.get_experimental_options().get(key, True)
  tf.config.optimizer.set_experimental_options({key: False})
  try:
    yield
  finally:
    tf.config.optimizer.set_experimental_options({key: before})


def trained_heads(config: Dict[str, Any]) -> List[Optional[str]]:
  """The models run_fn trains, by the head each answers alone: with topics
  and `topic_model` 'separate', one per head (a student has both heads
  always); else [None], one model answering every head the data has."""
  topic_model = config.get('topic_model', 'joint')
  if topic_model not in TOPIC_MODELS:
    raise ValueError(f'topic_model must be one of {TOPIC_MODELS}, got '
                     f'{topic_model!r}')
  if (config.get('num_topics') and topic_model == 'separate' and
      not config.get('distillation')):
    return list(HEAD_CLASSES)
  return [None]


@dataclasses.dataclass
class FittedModel:
  """A model fit_model trained, and what it was trained on."""
  model: keras.Model
  inputs: TrainingInputs
  hyperparameters: Dict[str, Any]
  epochs: int
  train_seconds: float
  # LP-FT's seconds of the head alone (fit_head_first), or None.
  head_seconds: Optional[float]


def fit_model(fn_args: tfx.components.FnArgs,
              strategy: tf.distribute.Strategy, head: Optional[str],
              hyperparameters: Dict[str, Any], learning_rate: float,
              log_dir: str, name: str, verbose: int,
              bars: bool) -> FittedModel:
  """Reads the examples (of `head` alone, if given: prepare_training),
  builds and compiles the model in the strategy's scope and fits it, its
  head first when `head_epochs` asks (LP-FT), until early stopping, with
  TensorBoard logs in `log_dir` and, with `bars`, progress bars named
  `name`."""
  config = fn_args.custom_config
  training = config['training']
  # Each model from the same seed, whichever was trained before it.
  keras.utils.set_random_seed(training['seed'])
  inputs = prepare_training(fn_args, strategy, head)
  hyperparameters = dict(hyperparameters)
  if inputs.teacher_embeddings is not None:
    # A student of the teacher's pieces: 128 of them padded, a headline's
    # median 26; cut as the encoder's are.
    hyperparameters['trim_padding'] = True
  if (isinstance(strategy, tf.distribute.TPUStrategy) and
      hyperparameters.get('trim_padding')):
    # XLA compiles a step per shape: the whole padded length, once.
    logging.info('On a TPU the model reads its whole padded length '
                 '(trim_padding off)')
    hyperparameters['trim_padding'] = False
  with strategy.scope():
    model = compile_model(config['architecture'], inputs, hyperparameters,
                          learning_rate, training)
  model.summary(print_fn=logging.info)
  callbacks = [
      early_stopping(training, inputs.num_topics),
      keras.callbacks.TensorBoard(log_dir=log_dir, profile_batch=0),
  ]
  if strategy_lib.is_chief(strategy):
    callbacks.append(profiling.StepProfiler(
        os.path.join(log_dir, model_run_lib.TRAIN_LOG_SUBDIR),
        *training['profile_steps']))
  monitor = early_stopping_monitor(training, inputs.num_topics)
  if bars:
    callbacks.append(epoch_progress.EpochProgress(name, inputs.epochs,
                                                  monitor))
  head_seconds = None
  with (_without_arithmetic_optimization() if inputs.num_topics
        else contextlib.nullcontext()):
    if inputs.pretrained_encoder and training.get('head_epochs'):
      head_seconds = fit_head_first(
          model, inputs, learning_rate, training, strategy,
          [epoch_progress.EpochProgress(f'{name} head',
                                        training['head_epochs'], monitor)]
          if bars else [], verbose)
    started = time.monotonic()
    history = fit(model, inputs, inputs.epochs, callbacks, verbose)
  return FittedModel(model, inputs, hyperparameters, len(history.epoch),
                     time.monotonic() - started, head_seconds)


def run_fn(fn_args: tfx.components.FnArgs) -> Dict[str, Any]:
  """Trains the architecture named in `custom_config` and exports it.

  With a Tuner upstream, its best hyperparameters replace the configured
  ones. A student (custom_config['distillation']) is trained so from
  BulkInferrer's examples (prepare_training) and summarised with its
  agreement with the teacher (student_summary). With topics and
  `topic_model` 'separate', a model per head (trained_heads), each
  calibrated on its own head's examples and exported together
  (combined_model). Under a multi-worker strategy every worker runs this;
  only the chief's model and logs land in the Trainer's output dirs.
  Returns the training summary, which is also written to the model_run
  dir.
  """
  config = fn_args.custom_config
  training = config['training']
  # First: a multi-worker strategy and logical CPU devices must be set up
  # before TensorFlow's runtime starts.
  strategy_name, strategy = strategy_lib.get_distribution_strategy(training)
  heads = trained_heads(config)
  num_topics = config.get('num_topics', 0)
  hyperparameters, base_learning_rate = tuned_settings(
      config, fn_args.hyperparameters)
  replicas = strategy.num_replicas_in_sync
  learning_rate = strategy_lib.scaled_learning_rate(
      base_learning_rate, replicas, training['learning_rate_scaling'])
  settings = config.get('distillation')

  with strategy_lib.worker_output_dirs(
      strategy, fn_args.serving_model_dir,
      fn_args.model_run_dir) as (serving_model_dir, model_run_dir):
    # At the local pipeline's default verbosity one bar per model (the
    # progress bar replaces Keras's lines); else Keras's line per epoch.
    progress = epoch_progress.enabled()
    name = config.get('candidate') or config['architecture']
    fitted = {
        head: fit_model(
            fn_args, strategy, head, hyperparameters, learning_rate,
            # Separate models: a TensorBoard run each (`sentiment/train`).
            os.path.join(model_run_dir, head) if head else model_run_dir,
            f'{name}.{head}' if head else name, verbose=0 if progress else 2,
            bars=progress and strategy_lib.is_chief(strategy))
        for head in heads}
    calibrations = {}
    student_eval = None
    for head, fitted_model in fitted.items():
      inputs = fitted_model.inputs
      if settings:
        student_eval = model_inputs(teacher_examples(
            fn_args.eval_files, inputs.tft_output, settings,
            inputs.input_keys[0], inputs.num_topics), inputs.input_keys)
        eval_examples = distillation_lib.labelled_only(student_eval)
      else:
        eval_examples = transformed_examples(
            fn_args.eval_files, inputs.feature_spec, inputs.input_keys,
            num_topics)
        if head:
          eval_examples = head_examples(eval_examples, head)
        eval_examples = model_inputs(eval_examples, inputs.input_keys)
      calibrations[head] = calibrate(fitted_model.model, inputs.held_out,
                                     eval_examples, training['calibration'])
    # What the models share: Transform's output, the inputs they read, the
    # settings (prepare_training).
    first = next(iter(fitted.values()))
    inputs = first.inputs
    if None in fitted:
      model, calibration_summary = fitted[None].model, calibrations[None]
    else:
      # As a two-head model's: the sentiment's report, the topic's under
      # its name.
      model = combined_model({head: f.model for head, f in fitted.items()})
      calibration_summary = {
          **calibrations[features.SENTIMENT_HEAD],
          features.TOPIC_HEAD: calibrations[features.TOPIC_HEAD]}
    logging.info('Calibration: %s', calibration_summary)
    export.export_serving_model(
        model, inputs.tft_output, serving_model_dir,
        temperature=calibration_summary['temperature'],
        topic_temperature=calibration_summary.get(
            features.TOPIC_HEAD, {}).get('temperature', 1.0))
    task_type, task_id = strategy_lib.task_of(strategy)
    head_seconds = [f.head_seconds for f in fitted.values()
                    if f.head_seconds]
    training_summary = {
        'architecture': config['architecture'],
        'candidate': config.get('candidate', config['architecture']),
        'parameters': model.count_params(),
        'num_topics': num_topics,
        # With topics: `separate` models per head, or one `joint` model.
        'topic_model': (None if not num_topics else
                        'joint' if None in fitted else 'separate'),
        # Of every model (separate_models: of each).
        'epochs': sum(f.epochs for f in fitted.values()),
        'train_seconds': round(sum(f.train_seconds
                                   for f in fitted.values()), 1),
        'separate_models': None if None in fitted else {
            head: {'parameters': f.model.count_params(),
                   'epochs': f.epochs,
                   'train_seconds': round(f.train_seconds, 1),
                   'head_train_seconds': (round(f.head_seconds, 1)
                                          if f.head_seconds else None)}
            for head, f in fitted.items()},
        # LP-FT's epochs of the head alone before them (fit_head_first).
        'head_epochs': training.get('head_epochs') if head_seconds else None,
        'head_train_seconds': (round(sum(head_seconds), 1) if head_seconds
                               else None),
        'strategy': strategy_name,
        'replicas': replicas,
        'task': f'{task_type}:{task_id}' if task_type else None,
        'global_batch_size': inputs.batch_size,
        'learning_rate': learning_rate,
        'base_learning_rate': base_learning_rate,
        'learning_rate_schedule': training['learning_rate_schedule'],
        # A student's loss has neither (student_examples).
        'label_smoothing': None if settings else training['label_smoothing'],
        'focal_gamma': None if settings else training['focal_gamma'],
        'hyperparameters': first.hyperparameters,
        'pretrained_encoder': inputs.pretrained_encoder,
        'word_vectors': training['word_vectors'],
        # Tokens of the vocabulary whose embedding started from a vector.
        'word_vectors_covered': (len(inputs.word_vector_rows)
                                 if inputs.word_vector_rows else None),
        'tuned': bool(fn_args.hyperparameters),
        'weights_sha256': weights_digest(model),
        'calibration': calibration_summary,
        'distillation': (student_summary(model, settings,
                                         inputs.student_rows, student_eval)
                         if settings else None),
    }
    model_run_lib.write_training_summary(model_run_dir, training_summary)
  logging.info('Trained %s; exported to %s', training_summary,
               serving_model_dir)
  return training_summary
