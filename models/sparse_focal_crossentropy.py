"""Cross-entropy of integer labels, with label smoothing and focal weighting."""

from typing import Optional, Sequence

import keras
# Keras's own sparse cross-entropy marks ignored rows this way; the loss's
# reduction then averages over the marked rows only.
from keras.src.backend import set_keras_mask


@keras.saving.register_keras_serializable(package='finsent')
class SparseFocalCrossentropy(keras.losses.Loss):
  """Cross-entropy between integer labels and class probabilities, with
  optional label smoothing and focal weighting.

  Label smoothing: the target of an example with label k puts
  1 - label_smoothing + label_smoothing / num_classes on class k and
  label_smoothing / num_classes on every other class (Szegedy et al. 2016,
  "Rethinking the Inception architecture", section 7).

  Focal weighting: each class's term is multiplied by (1 - p)^focal_gamma,
  p the predicted probability of that class, so examples the model already
  gets right weigh less and the hard ones more (Lin et al. 2017, "Focal loss
  for dense object detection"; no alpha balancing: class weights do that).

  Keras's SparseCategoricalCrossentropy has neither; this is its
  categorical cross-entropy (focal_gamma 0) or categorical focal
  cross-entropy (alpha 1) on the one-hot labels. With both 0 it is the plain
  sparse cross-entropy.

  Ignored rows: with `ignore_class` set (as in Keras's
  SparseCategoricalCrossentropy), a row labelled `ignore_class` adds
  nothing, and the batch's loss is the mean over the other rows (0 when
  there are none). A model with several heads, each learned from the
  records that carry its label, gives the others' records -1.

  Shapes: `y_true` int [batch] or [batch, 1]; `y_pred` float
  [batch, num_classes], probabilities; the loss per example float [batch].

  Args:
    num_classes: number of classes, the last dimension of `y_pred`.
    label_smoothing: share of the target spread evenly over all classes,
      in [0, 1).
    focal_gamma: the focusing exponent, at least 0; 0 is the cross-entropy.
    ignore_class: a label value that is no class (e.g. -1: the record has
      no label for this head), or None.
    class_weights: a positive weight per class multiplying the loss of the
      rows labelled with it (as Keras's `class_weight` does for a model with
      one output, which it cannot do per head), or None.
  """

  def __init__(self, num_classes: int, label_smoothing: float = 0.0,
               focal_gamma: float = 0.0,
               ignore_class: Optional[int] = None,
               class_weights: Optional[Sequence[float]] = None,
               name: str = 'sparse_focal_crossentropy', **kwargs):
    super().__init__(name=name, **kwargs)
    if num_classes < 2:
      raise ValueError(f'num_classes must be at least 2, got {num_classes}')
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(f'label_smoothing must be in [0, 1), got '
                       f'{label_smoothing}')
    if not focal_gamma >= 0.0:
      raise ValueError(f'focal_gamma must be at least 0, got {focal_gamma}')
    self.num_classes = num_classes
    self.label_smoothing = label_smoothing
    if ignore_class is not None and 0 <= ignore_class < num_classes:
      raise ValueError(f'ignore_class {ignore_class} is one of the '
                       f'{num_classes} classes (0..{num_classes - 1})')
    self.focal_gamma = focal_gamma
    self.ignore_class = ignore_class
    if class_weights is not None:
      class_weights = [float(w) for w in class_weights]
      if len(class_weights) != num_classes or not all(
          w > 0 for w in class_weights):
        raise ValueError(f'class_weights must be {num_classes} positive '
                         f'weights, got {class_weights}')
    self.class_weights = class_weights

  def call(self, y_true, y_pred):
    labels = keras.ops.reshape(keras.ops.cast(y_true, 'int32'), [-1])
    if self.ignore_class is not None:
      valid = keras.ops.not_equal(labels, self.ignore_class)
      labels = keras.ops.where(valid, labels, 0)
    one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
    if self.focal_gamma == 0.0:
      loss = keras.losses.categorical_crossentropy(
          one_hot, y_pred, label_smoothing=self.label_smoothing)
    else:
      loss = keras.losses.categorical_focal_crossentropy(
          one_hot, y_pred, alpha=1.0, gamma=self.focal_gamma,
          label_smoothing=self.label_smoothing)
    if self.class_weights is not None:
      loss = loss * keras.ops.take(
          keras.ops.convert_to_tensor(self.class_weights, loss.dtype), labels)
    if self.ignore_class is not None:
      loss = keras.ops.where(valid, loss, keras.ops.zeros_like(loss))
      set_keras_mask(loss, valid)
    return loss

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes,
            'label_smoothing': self.label_smoothing,
            'focal_gamma': self.focal_gamma,
            'ignore_class': self.ignore_class,
            'class_weights': self.class_weights}
