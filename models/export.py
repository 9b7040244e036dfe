"""Export of a trained model with its Transform graph as one SavedModel.

The Keras 3 model and the TFT layer (a tf_keras layer) cannot live in one
Keras model, so both hang off a plain `tf.Module` whose `tf.function`s are
the signatures:

* `serving_default`: `text` string [N] (raw UTF-8) -> `probabilities` float32
  [N, 3] in `LABELS` order and `label` string [N].
* `serving_examples`: `examples` serialized tf.Example [N] -> same outputs;
  what TFMA and TF Serving's Predict on examples call.
* `transform_features`: `examples` [N] -> transformed features, label
  included; TFMA's preprocessing function to read the integer label.

Loading needs only `tensorflow` and `tensorflow_text` (for the tokenizer op).
"""

import keras
import tensorflow as tf
import tensorflow_transform as tft

from models import features

SERVING_SIGNATURE = 'serving_default'
EXAMPLES_SIGNATURE = 'serving_examples'
TRANSFORM_SIGNATURE = 'transform_features'


class SentimentServingModule(tf.Module):
  """A trained classifier and its preprocessing, callable on raw text."""

  def __init__(self, model: keras.Model,
               tft_output: tft.TFTransformOutput):
    super().__init__(name='sentiment_serving')
    self.model = model
    # Keras 3 keeps some state (dropout seed generators) outside the
    # variables tf.Module tracks through `model`; listing them lets
    # tf.saved_model.save find them, as keras.export.ExportArchive does.
    self.keras_variables = list(model.variables)
    self.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    text_spec = raw_spec[features.TEXT_KEY]
    if not isinstance(text_spec, tf.io.FixedLenFeature):
      raise ValueError(
          f'the schema must declare {features.TEXT_KEY!r} as one required '
          f'value per example, got {text_spec}')
    self._text_shape = [-1] + list(text_spec.shape)
    # Parse only what preprocessing reads: other raw features (source,
    # published_at) may be required in the training schema but must not be
    # required of a client.
    self._serving_spec = {features.TEXT_KEY: text_spec}
    self._labelled_spec = {features.TEXT_KEY: text_spec,
                           features.LABEL_KEY: raw_spec[features.LABEL_KEY]}

  def _predict(self, raw_features):
    transformed = self.tft_layer(raw_features)
    probabilities = self.model(
        {features.TOKEN_IDS_KEY: transformed[features.TOKEN_IDS_KEY]},
        training=False)
    label = tf.gather(tf.constant(features.LABELS),
                      tf.argmax(probabilities, axis=1))
    return {'probabilities': probabilities, 'label': label}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='text')])
  def serve_text(self, text):
    return self._predict(
        {features.TEXT_KEY: tf.reshape(text, self._text_shape)})

  @tf.function(
      input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve_examples(self, examples):
    return self._predict(tf.io.parse_example(examples, self._serving_spec))

  @tf.function(
      input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def transform_examples(self, examples):
    return self.tft_layer(tf.io.parse_example(examples, self._labelled_spec))


def export_serving_model(model: keras.Model,
                         tft_output: tft.TFTransformOutput,
                         export_dir: str) -> None:
  """Writes `model` with its preprocessing as a SavedModel to `export_dir`."""
  module = SentimentServingModule(model, tft_output)
  tf.saved_model.save(module, export_dir, signatures={
      SERVING_SIGNATURE: module.serve_text,
      EXAMPLES_SIGNATURE: module.serve_examples,
      TRANSFORM_SIGNATURE: module.transform_examples,
  })
