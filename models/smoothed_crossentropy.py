"""Cross-entropy of integer labels with label smoothing."""

import keras


@keras.saving.register_keras_serializable(package='finsent')
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
  """Cross-entropy between integer labels, smoothed, and class probabilities.

  The target of an example with label k puts 1 - label_smoothing +
  label_smoothing / num_classes on class k and label_smoothing / num_classes
  on every other class (Szegedy et al. 2016, "Rethinking the Inception
  architecture", section 7). Keras's SparseCategoricalCrossentropy has no
  label_smoothing; this is its CategoricalCrossentropy on the one-hot
  labels. With label_smoothing 0 it is the plain sparse cross-entropy.

  Shapes: `y_true` int [batch] or [batch, 1]; `y_pred` float
  [batch, num_classes], probabilities; the loss per example float [batch].

  Args:
    num_classes: number of classes, the last dimension of `y_pred`.
    label_smoothing: share of the target spread evenly over all classes,
      in [0, 1).
  """

  def __init__(self, num_classes: int, label_smoothing: float = 0.0,
               name: str = 'smoothed_sparse_categorical_crossentropy',
               **kwargs):
    super().__init__(name=name, **kwargs)
    if num_classes < 2:
      raise ValueError(f'num_classes must be at least 2, got {num_classes}')
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(f'label_smoothing must be in [0, 1), got '
                       f'{label_smoothing}')
    self.num_classes = num_classes
    self.label_smoothing = label_smoothing

  def call(self, y_true, y_pred):
    labels = keras.ops.reshape(keras.ops.cast(y_true, 'int32'), [-1])
    one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
    return keras.losses.categorical_crossentropy(
        one_hot, y_pred, label_smoothing=self.label_smoothing)

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes,
            'label_smoothing': self.label_smoothing}
