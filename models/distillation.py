"""Knowledge distillation: a student learns from a teacher's probabilities.

The teacher (the fine-tuned encoder) is run by TFX's BulkInferrer over the
raw examples, which gives each one the float feature
`teacher_probabilities` (K values in LABELS order, the exported and so
calibrated probabilities), and with a topic head `teacher_topic_probabilities`
(one per topic). A student Trainer (models.trainer.run_fn with
custom_config['distillation']) reads those examples with the teacher's
Transform graph and fits each output on packed targets

  y [batch, 1 + K]: y[:, 0] the label id, -1 where there is no label;
                    y[:, 1:] the teacher's probabilities,

(a dict of them by head for a student with a topic head), so that
`model.fit`, any tf.distribute strategy and Keras's validation run
unchanged. The loss and the metrics below read that packing; each head has
its own, and learns the teacher's view of every text, its label's where
the text has one.
"""

from typing import Any, Dict, List, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from finsent.configs import features
from finsent.configs.training import HARD_TERM_MEANS
from finsent.models import macro_f1

NUM_CLASSES = len(features.LABELS)
# Probabilities are floored here before their log, as Keras's own
# cross-entropy floors them (keras.backend.epsilon()).
EPSILON = 1e-7


@keras.saving.register_keras_serializable(package='finsent')
class DistillationLoss(keras.losses.Loss):
  """Hinton et al. 2015's distillation loss, with labels where there are
  some.

  Per example, with p the teacher's and q the student's probabilities and
  x_T = softmax(log x / T):

    alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * [label >= 0] * CE(label, q)

  The T^2 keeps the soft term's gradients as large whatever T (section 2 of
  the paper). softmax(log q / T) is softmax(z / T) of the student's logits
  z, so the models' probability outputs serve; logs are of probabilities
  floored at `epsilon`. An unlabelled example (label -1) contributes its
  soft term only.

  `hard_term_mean`: `labelled` averages the cross-entropy over the
  labelled examples of each batch (scaled by batch / labelled, so after
  Keras's mean over the batch it is their mean), so that alpha weighs the
  labels the same whatever the share of unlabelled texts; `batch` is the
  paper's per-example sum averaged over the whole batch, where many
  unlabelled texts shrink the hard term. A batch with no label gives the
  soft term alone either way.

  Shapes: `y_true` float [batch, 1 + K], label id (or -1) then the
  teacher's K probabilities; `y_pred` float [batch, K], probabilities; the
  loss per example float [batch].

  Args:
    temperature: T, above 0; 1 compares the probabilities as they are.
    alpha: weight of the soft term in [0, 1]; the labels have the rest.
    hard_term_mean: one of HARD_TERM_MEANS.
    epsilon: floor of a probability before its log.
  """

  def __init__(self, temperature: float = 2.0, alpha: float = 0.5,
               hard_term_mean: str = 'labelled', epsilon: float = EPSILON,
               name: str = 'distillation', **kwargs):
    super().__init__(name=name, **kwargs)
    if not temperature > 0:
      raise ValueError(f'temperature must be above 0, got {temperature}')
    if not 0.0 <= alpha <= 1.0:
      raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    if hard_term_mean not in HARD_TERM_MEANS:
      raise ValueError(f'hard_term_mean must be one of {HARD_TERM_MEANS}, '
                       f'got {hard_term_mean!r}')
    self.temperature = temperature
    self.alpha = alpha
    self.hard_term_mean = hard_term_mean
    self.epsilon = epsilon

  def call(self, y_true, y_pred):
    ops = keras.ops
    y_true = ops.cast(y_true, y_pred.dtype)
    labels = ops.cast(y_true[:, 0], 'int32')
    has_label = ops.cast(labels >= 0, y_pred.dtype)
    log_q = ops.log(ops.maximum(y_pred, self.epsilon))
    log_p = ops.log(ops.maximum(y_true[:, 1:], self.epsilon))
    t = self.temperature
    log_p_t = ops.log_softmax(log_p / t, axis=-1)
    log_q_t = ops.log_softmax(log_q / t, axis=-1)
    soft = ops.sum(ops.exp(log_p_t) * (log_p_t - log_q_t), axis=-1) * t * t
    # Label -1 picks class 0 here, and has_label zeroes its term.
    one_hot = ops.one_hot(ops.maximum(labels, 0), ops.shape(y_pred)[-1],
                          dtype=y_pred.dtype)
    hard = -ops.sum(one_hot * log_q, axis=-1) * has_label
    if self.hard_term_mean == 'labelled':
      batch = ops.cast(ops.shape(y_pred)[0], y_pred.dtype)
      hard = hard * batch / ops.maximum(ops.sum(has_label), 1.0)
    return self.alpha * soft + (1.0 - self.alpha) * hard

  def get_config(self):
    return {**super().get_config(), 'temperature': self.temperature,
            'alpha': self.alpha, 'hard_term_mean': self.hard_term_mean,
            'epsilon': self.epsilon}


@keras.saving.register_keras_serializable(package='finsent')
class MaskedSparseCategoricalAccuracy(macro_f1.SparseAccuracy):
  """Accuracy of the argmax over the labelled examples of packed targets.

  Shapes: `y_true` float [batch, 1 + K] (label id, -1 where there is none,
  then the teacher's probabilities, not read); `y_pred` float
  [batch, K]. The label id column through macro_f1.SparseAccuracy with
  `ignore_class` -1. Named `sparse_categorical_accuracy` as Keras names the
  metric of integer labels, so early stopping on
  `val_sparse_categorical_accuracy` works for a student as for any model.
  """

  def __init__(self, name: str = 'sparse_categorical_accuracy', dtype=None,
               ignore_class: int = -1):
    super().__init__(name=name, dtype=dtype, ignore_class=ignore_class)

  def update_state(self, y_true, y_pred, sample_weight=None):
    return super().update_state(y_true[:, 0], y_pred, sample_weight)


@keras.saving.register_keras_serializable(package='finsent')
class MaskedSparseMacroF1Score(macro_f1.SparseMacroF1Score):
  """models.macro_f1.SparseMacroF1Score over the labelled examples of
  packed targets: their label id column, `ignore_class` -1.

  Shapes as MaskedSparseCategoricalAccuracy's. Named `macro_f1`, so early
  stopping on `val_macro_f1` works for a student too.
  """

  def __init__(self, num_classes: int, name: str = 'macro_f1', dtype=None,
               ignore_class: int = -1):
    super().__init__(num_classes, name=name, dtype=dtype,
                     ignore_class=ignore_class)

  def update_state(self, y_true, y_pred, sample_weight=None):
    return super().update_state(y_true[:, 0], y_pred, sample_weight)


def split_name(file_pattern: str) -> str:
  """'.../output_examples/7/Split-unlabelled/*' -> 'unlabelled'; '' when
  no directory of the path is a split's.

  TFX's FnArgs lists a Trainer's files without their splits, and writes
  each split under `Split-<name>` (artifact_utils.get_split_uri).
  """
  for part in reversed(file_pattern.split('/')):
    if part.startswith('Split-'):
      return part[len('Split-'):]
  return ''


def teacher_heads(num_topics: int = 0,
                  teacher_probabilities_key: str = (
                      features.TEACHER_PROBABILITIES_KEY),
                  teacher_topic_probabilities_key: str = (
                      features.TEACHER_TOPIC_PROBABILITIES_KEY)
                  ) -> Dict[str, Tuple[str, str, int]]:
  """Per head the student learns: (its transformed label id, the feature
  holding the teacher's probabilities, its number of classes). The
  sentiment head alone without `num_topics`."""
  heads = {features.SENTIMENT_HEAD: (
      features.LABEL_ID_KEY, teacher_probabilities_key, NUM_CLASSES)}
  if num_topics:
    heads[features.TOPIC_HEAD] = (
        features.TOPIC_ID_KEY, teacher_topic_probabilities_key, num_topics)
  return heads


def distillation_examples(file_patterns: List[str],
                          tft_output: tft.TFTransformOutput,
                          teacher_probabilities_key: str = (
                              features.TEACHER_PROBABILITIES_KEY),
                          unlabelled_split: str = features.UNLABELLED_SPLIT,
                          input_key: str = features.TOKEN_IDS_KEY,
                          num_topics: int = 0,
                          teacher_topic_probabilities_key: str = (
                              features.TEACHER_TOPIC_PROBABILITIES_KEY)
                          ) -> tf.data.Dataset:
  """Unbatched (x, y) of raw examples with the teacher's probabilities
  (BulkInferrer's output). x holds `input_key`, the transformed feature
  the student reads (Transform's `token_ids` or the teacher's
  `encoder_token_ids`), and `token_ids`, which the held-out split hashes
  (models.trainer.split_for_early_stopping), each int64 [length].

  y is float32 [1 + K]: y[0] Transform's label id, y[1:] the teacher's K
  probabilities. With `num_topics` (a teacher with a topic head), y is
  {'sentiment': that, 'topic': float32 [1 + num_topics]}, the topic id and
  the teacher's topic probabilities (teacher_heads). A label id is -1 for
  an example without that label and for every example of the
  `unlabelled_split` files, whatever labels it carries.

  Each batch of records is parsed and put through the teacher's Transform
  graph (`transform_features_layer`), so the student learns from the very
  features its export computes from raw text; the result is cached, so
  that happens once, however many epochs read it.
  """
  # Files of the unlabelled split (True) and of the others (False).
  files = {False: [], True: []}
  for pattern in file_patterns:
    files[split_name(pattern) == unlabelled_split] += sorted(
        tf.io.gfile.glob(pattern))
  if not files[False] + files[True]:
    raise ValueError(f'no examples match {file_patterns}')
  heads = teacher_heads(num_topics, teacher_probabilities_key,
                        teacher_topic_probabilities_key)
  _check_teacher_probabilities((files[False] + files[True])[0],
                               {key: k for _, key, k in heads.values()})
  raw_spec = tft_output.raw_feature_spec()
  if num_topics and features.TOPIC_KEY not in raw_spec:
    raise ValueError(
        f'a student with a topic head learns from Transform\'s '
        f'{features.TOPIC_ID_KEY}, which this Transform graph lacks: its '
        'data has no topics')
  spec = {features.TEXT_KEY: raw_spec[features.TEXT_KEY]}
  # The labels the Transform graph reads, optional in the curated schema:
  # records with one label of two, and unlabelled texts, lack some.
  label_keys = [key for key in (features.LABEL_KEY, features.TOPIC_KEY)
                if key in raw_spec]
  for key in label_keys:
    label_spec = raw_spec[key]
    if isinstance(label_spec, tf.io.FixedLenFeature):
      # A schema requiring it: absent from unlabelled texts, where ''
      # stands for it (the id -1, preprocessing.class_ids).
      label_spec = tf.io.FixedLenFeature(
          label_spec.shape, tf.string,
          default_value=[''] * int(np.prod(label_spec.shape)))
    spec[key] = label_spec
  for _, key, classes in heads.values():
    spec[key] = tf.io.FixedLenFeature([classes], tf.float32)
  transform = tft_output.transform_features_layer()

  def parse_and_transform(records, unlabelled):
    raw = tf.io.parse_example(records, spec)
    teacher = {head: raw.pop(key) for head, (_, key, _) in heads.items()}
    if unlabelled:
      for key in label_keys:
        raw[key] = _without_values(raw[key])
    transformed = transform(raw)
    y = {head: tf.concat([tf.cast(transformed[id_key], tf.float32)[:, None],
                          teacher[head]], axis=1)
         for head, (id_key, _, _) in heads.items()}
    return ({key: transformed[key]
             for key in {features.TOKEN_IDS_KEY, input_key}},
            y if num_topics else y[features.SENTIMENT_HEAD])

  parts = [
      tf.data.TFRecordDataset(paths, compression_type='GZIP').batch(256).map(
          lambda records, u=unlabelled: parse_and_transform(records, u),
          num_parallel_calls=tf.data.AUTOTUNE).unbatch()
      for unlabelled, paths in files.items() if paths]
  examples = parts[0] if len(parts) == 1 else parts[0].concatenate(parts[1])
  # As trainer.transformed_examples: multi-worker replicas shard examples,
  # not files.
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return examples.cache().with_options(options)


def _without_values(label):
  """The parsed label feature with every record's label taken away (a
  label in an unlabelled split is ignored, as --unlabelled promises)."""
  if isinstance(label, tf.SparseTensor):
    return tf.sparse.retain(label, tf.zeros_like(label.values, tf.bool))
  return tf.fill(tf.shape(label), '')


def _check_teacher_probabilities(path: str, widths: Dict[str, int]) -> None:
  """Fails clearly, before any tf.data error, on examples BulkInferrer did
  not score (its first record): each feature of `widths` must hold that
  many floats."""
  record = next(iter(tf.data.TFRecordDataset(path, compression_type='GZIP')),
                None)
  if record is None:
    return
  feature = tf.train.Example.FromString(record.numpy()).features.feature
  for key, width in widths.items():
    if len(feature[key].float_list.value) != width:
      raise ValueError(
          f'{path}: the examples do not carry the teacher\'s {width} '
          f'probabilities as the float feature {key!r}: a student reads '
          "BulkInferrer's output_examples of a teacher with the student's "
          'heads')


def _label_ids(y) -> Dict[str, tf.Tensor]:
  """The label id column of packed targets, by head (one unnamed head:
  'sentiment')."""
  if isinstance(y, dict):
    return {head: packed[0] for head, packed in y.items()}
  return {features.SENTIMENT_HEAD: y[0]}


def has_label(x, y) -> tf.Tensor:
  """Whether a packed example has a label, for any head (a tf.data filter
  predicate)."""
  del x
  return tf.reduce_any(tf.stack([ids >= 0
                                 for ids in _label_ids(y).values()]))


def labelled_only(examples: tf.data.Dataset) -> tf.data.Dataset:
  """(features, label_id int64) of the labelled packed examples, and with
  several heads (features, {head: label id, -1 where none}): what
  trainer.calibrate and trainer.class_weights read."""
  def labels(x, y):
    if isinstance(y, dict):
      return x, {head: tf.cast(ids, tf.int64)
                 for head, ids in _label_ids(y).items()}
    return x, tf.cast(y[0], tf.int64)
  return examples.filter(has_label).map(labels)


def teacher_agreement(model: keras.Model,
                      examples: tf.data.Dataset) -> Dict[str, Any]:
  """How often the student's argmax is the teacher's, on unbatched packed
  examples, and how many there were: `argmax_agreement` of the sentiment,
  and with a topic head `topic_argmax_agreement` too."""
  several = isinstance(model.output, dict)
  heads = sorted(model.output) if several else [features.SENTIMENT_HEAD]
  agree, count = dict.fromkeys(heads, 0), 0
  for x, y in examples.batch(1024):
    student = model(x, training=False)
    if not several:
      student, y = {features.SENTIMENT_HEAD: student}, {
          features.SENTIMENT_HEAD: y}
    for head in heads:
      agree[head] += int((
          keras.ops.convert_to_numpy(student[head]).argmax(axis=1) ==
          y[head].numpy()[:, 1:].argmax(axis=1)).sum())
    count += len(y[features.SENTIMENT_HEAD])
  if not count:
    logging.warning('No examples to measure the agreement with the teacher')
  return {'examples': count, **{
      ('argmax_agreement' if head == features.SENTIMENT_HEAD
       else f'{head}_argmax_agreement'): (
           round(agree[head] / count, 4) if count else None)
      for head in heads}}
