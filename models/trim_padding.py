"""TrimPadding: cuts a batch of padded encoder inputs to its longest text."""

import keras


@keras.saving.register_keras_serializable(package='finsent')
class TrimPadding(keras.layers.Layer):
  """Drops the padding columns that no text of the batch reaches.

  Transform pads every text to one length, long enough for the longest
  texts of any source (a Reuters sentence runs to 100+ pieces, a headline's
  median is 26). An encoder's cost grows with the padded length, so the
  classifier cuts each batch to its longest text first: training, the
  Evaluator and serving then pay for the pieces the batch holds. The
  result is the same as on the padded batch: padding is masked out of
  attention and out of the pooled mean. Dynamic shapes: leave it out where
  XLA must compile fixed ones (a TPU).

  Call arguments:
    inputs: a dict of int tensors [batch, sequence_length] that holds
      `mask_key`, 1 for a real piece and 0 for padding, padding at the end
      (BERT's packer).

  Returns:
    The same dict, each tensor [batch, longest], `longest` the batch's
    largest count of real pieces (at least 1).
  """

  def __init__(self, mask_key: str = 'padding_mask', **kwargs):
    super().__init__(**kwargs)
    self.mask_key = mask_key

  def call(self, inputs):
    lengths = keras.ops.sum(
        keras.ops.cast(keras.ops.not_equal(inputs[self.mask_key], 0),
                       'int32'), axis=1)
    longest = keras.ops.maximum(keras.ops.max(lengths), 1)
    return {name: value[:, :longest] for name, value in inputs.items()}

  def compute_output_shape(self, input_shape):
    return {name: (shape[0], None) for name, shape in input_shape.items()}

  def get_config(self):
    config = super().get_config()
    config.update({'mask_key': self.mask_key})
    return config
