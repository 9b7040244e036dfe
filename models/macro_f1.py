"""Macro-F1 of the argmax prediction, for integer labels, as a Keras metric."""

from typing import Optional

import keras


def _without_ignored(y_true, sample_weight, ignore_class: Optional[int]):
  """(label ids [batch], weights or None): rows labelled `ignore_class`
  weigh 0 and read as class 0."""
  labels = keras.ops.reshape(keras.ops.cast(y_true, 'int32'), [-1])
  if ignore_class is None:
    return labels, sample_weight
  kept = keras.ops.cast(keras.ops.not_equal(labels, ignore_class), 'float32')
  if sample_weight is not None:
    kept = kept * keras.ops.cast(keras.ops.reshape(sample_weight, [-1]),
                                 'float32')
  return keras.ops.where(keras.ops.not_equal(labels, ignore_class), labels,
                         0), kept


@keras.saving.register_keras_serializable(package='finsent')
class SparseMacroF1Score(keras.metrics.F1Score):
  """Unweighted mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c).

  `keras.metrics.F1Score` with `average='macro'` and no threshold (the
  argmax is the prediction), taking class ids as labels: y_true int
  [batch] or [batch, 1], y_pred probabilities float [batch, num_classes].
  The same measure as the Evaluator's `models.tfma_metrics.MacroF1Score`,
  so training can stop early on what the tournament ranks by.

  Args:
    num_classes: size of the prediction's last axis.
    name: the metric's name; `val_<name>` in the history on held-out data.
    dtype: dtype of the result.
    ignore_class: a label value that is no class (-1: the example has no
      label for this head), left out of the counts; or None.
  """

  def __init__(self, num_classes: int, name: str = 'macro_f1', dtype=None,
               ignore_class: Optional[int] = None):
    super().__init__(average='macro', threshold=None, name=name, dtype=dtype)
    self.num_classes = num_classes
    self.ignore_class = ignore_class

  def update_state(self, y_true, y_pred, sample_weight=None):
    labels, sample_weight = _without_ignored(y_true, sample_weight,
                                             self.ignore_class)
    return super().update_state(keras.ops.one_hot(labels, self.num_classes),
                                y_pred, sample_weight)

  def get_config(self):
    return {'num_classes': self.num_classes, 'name': self.name,
            'dtype': self.dtype, 'ignore_class': self.ignore_class}


@keras.saving.register_keras_serializable(package='finsent')
class SparseAccuracy(keras.metrics.SparseCategoricalAccuracy):
  """Keras's sparse categorical accuracy, leaving out the examples labelled
  `ignore_class` (-1: no label for this head) when it is set.

  Shapes as Keras's: y_true int [batch] or [batch, 1], y_pred float
  [batch, num_classes]. Named `sparse_categorical_accuracy` as Keras names
  it, so early stopping reads the same name.
  """

  def __init__(self, name: str = 'sparse_categorical_accuracy', dtype=None,
               ignore_class: Optional[int] = None):
    super().__init__(name=name, dtype=dtype)
    self.ignore_class = ignore_class

  def update_state(self, y_true, y_pred, sample_weight=None):
    labels, sample_weight = _without_ignored(y_true, sample_weight,
                                             self.ignore_class)
    return super().update_state(labels, y_pred, sample_weight)

  def get_config(self):
    return {**super().get_config(), 'ignore_class': self.ignore_class}
