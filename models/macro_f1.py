"""Macro-F1 of the argmax prediction, for integer labels, as a Keras metric."""

import keras


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
  """

  def __init__(self, num_classes: int, name: str = 'macro_f1', dtype=None):
    super().__init__(average='macro', threshold=None, name=name, dtype=dtype)
    self.num_classes = num_classes

  def update_state(self, y_true, y_pred, sample_weight=None):
    y_true = keras.ops.one_hot(
        keras.ops.reshape(keras.ops.cast(y_true, 'int32'), [-1]),
        self.num_classes)
    return super().update_state(y_true, y_pred, sample_weight)

  def get_config(self):
    return {'num_classes': self.num_classes, 'name': self.name,
            'dtype': self.dtype}
