"""Export of a trained model with its Transform graph as one SavedModel.

The Keras 3 model and the TFT layer (a tf_keras layer) cannot live in one
Keras model, so both hang off a plain `tf.Module` whose `tf.function`s are
the signatures:

* `serving_default`: `text` string [N] (raw UTF-8) -> `probabilities` float32
  [N, 3] in `LABELS` order and `label` string [N]; a model with a topic
  head (models.heads) also gives `topic` string [N] and
  `topic_probabilities` float32 [N, 20] in `TOPICS` order. The
  probabilities are the model's at the temperatures fitted by the Trainer
  (`models.calibration`), one per head.
* `serving_examples`: `examples` serialized tf.Example [N] -> same outputs;
  what TFMA and TF Serving's Predict on examples call.
* `classification`: TF Serving's Classify API (method_name
  `tensorflow/serving/classify`): `inputs` serialized tf.Example [N] ->
  `classes` string [N, 3] (`LABELS`) and `scores` float32 [N, 3]: the
  sentiment, as Classify answers one set of classes.
* `transform_features`: `examples` [N] -> transformed features, label
  (and topic) ids included; TFMA's preprocessing function to read the
  integer labels.
* `bulk_inference`: `examples` [N] -> `probabilities` (and
  `topic_probabilities`) only, as serving_examples gives them: what TFX's
  BulkInferrer writes into the students' examples through TF Serving's
  Predict (tfx_bsl 1.16's Predict handler fails on a string output such as
  `label`, and Classify answers one set of classes).

The SavedModel also carries TF Serving warm-up requests
(`assets.extra/tf_serving_warmup_requests`), replayed by the server before
a new version takes traffic.

Loading needs only `tensorflow` and `tensorflow_text` (for the tokenizer op),
through TF2's `tf.saved_model.load` or the TF1 session loader TF Serving
uses.
"""

import functools
import os
from typing import List

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from finsent.models import calibration
from finsent.configs import features

SERVING_SIGNATURE = 'serving_default'
EXAMPLES_SIGNATURE = 'serving_examples'
CLASSIFICATION_SIGNATURE = 'classification'
TRANSFORM_SIGNATURE = 'transform_features'
BULK_INFERENCE_SIGNATURE = 'bulk_inference'
# The float outputs of BULK_INFERENCE_SIGNATURE.
BULK_INFERENCE_OUTPUTS = (features.PROBABILITIES_OUTPUT,
                          features.TOPIC_PROBABILITIES_OUTPUT)
WARMUP_REQUESTS_FILE = os.path.join('assets.extra',
                                    'tf_serving_warmup_requests')
# Replayed as one request of each length, so the first real requests of
# batch size 1 and of a full batch do not pay for graph warm-up.
WARMUP_TEXTS = (
    'Acme shares jump 12% after earnings beat estimates',
    'Acme cuts full-year guidance; stock falls',
    'Acme to report fourth-quarter results on Tuesday',
    '$ACME: CEO to step down, board names interim chief',
)


def _scaled(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
  """softmax(log p / T), as `models.calibration.scale_probabilities`; T = 1
  leaves them as they are."""
  if temperature == 1.0:
    return probabilities
  return tf.nn.softmax(tf.math.log(tf.maximum(
      probabilities, calibration.SMALLEST_PROBABILITY)) / temperature)


class SentimentServingModule(tf.Module):
  """A trained classifier and its preprocessing, callable on raw text.

  `model` outputs sentiment probabilities, or a dict of them and topic
  probabilities (models.heads). With `temperature` T != 1 the sentiment
  probabilities are softmax(log p / T), and the topic's with
  `topic_temperature`; 1 leaves them as they are.
  """

  def __init__(self, model: keras.Model,
               tft_output: tft.TFTransformOutput, temperature: float = 1.0,
               topic_temperature: float = 1.0):
    super().__init__(name='sentiment_serving')
    for name, value in (('temperature', temperature),
                        ('topic_temperature', topic_temperature)):
      if not value > 0:
        raise ValueError(f'{name} must be positive, got {value}')
    self._temperature = temperature
    self._topic_temperature = topic_temperature
    self._has_topic = isinstance(model.output, dict)
    if self._has_topic and set(model.output) != {features.SENTIMENT_HEAD,
                                                 features.TOPIC_HEAD}:
      raise ValueError(
          f'a model with several outputs must have exactly '
          f'{features.SENTIMENT_HEAD!r} and {features.TOPIC_HEAD!r}, got '
          f'{sorted(model.output)}')
    # TF Serving restores variables with the SavedModel's TF1 saver, which
    # restores the tracked objects. A tracked Keras 3 model would export each
    # variable twice - its Keras wrapper (restored) and the tf.Variable it
    # wraps (read by the signatures, never restored) - so the model is kept
    # untracked (a partial is not a Trackable) and the tf.Variables are
    # tracked instead, as keras.export.ExportArchive does. The list also
    # holds state outside the layers' weights (dropout seed generators).
    self._classifier = functools.partial(model, training=False)
    # The transformed features the model reads (its named inputs).
    self._input_keys = sorted(model.input)
    self.model_variables = [v.value for v in model.variables]
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
    # What TFMA reads the labels from: the sentiment label, and the topic
    # where the data has one.
    self._labelled_spec = {key: raw_spec[key] for key in (
        features.TEXT_KEY, features.LABEL_KEY, features.TOPIC_KEY)
                           if key in raw_spec}

  def _predict(self, raw_features):
    transformed = self.tft_layer(raw_features)
    outputs = self._classifier({k: transformed[k] for k in self._input_keys})
    if not self._has_topic:
      outputs = {features.SENTIMENT_HEAD: outputs}
    probabilities = _scaled(outputs[features.SENTIMENT_HEAD],
                            self._temperature)
    served = {
        features.PROBABILITIES_OUTPUT: probabilities,
        features.LABEL_OUTPUT: tf.gather(tf.constant(features.LABELS),
                                         tf.argmax(probabilities, axis=1)),
    }
    if self._has_topic:
      topic_probabilities = _scaled(outputs[features.TOPIC_HEAD],
                                    self._topic_temperature)
      served[features.TOPIC_PROBABILITIES_OUTPUT] = topic_probabilities
      served[features.TOPIC_OUTPUT] = tf.gather(
          tf.constant(features.TOPICS), tf.argmax(topic_probabilities, axis=1))
    return served

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='text')])
  def serve_text(self, text):
    return self._predict(
        {features.TEXT_KEY: tf.reshape(text, self._text_shape)})

  @tf.function(
      input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve_examples(self, examples):
    return self._predict(tf.io.parse_example(examples, self._serving_spec))

  @tf.function(
      input_signature=[tf.TensorSpec([None], tf.string, name='inputs')])
  def classify_examples(self, inputs):
    probabilities = self._predict(tf.io.parse_example(
        inputs, self._serving_spec))[features.PROBABILITIES_OUTPUT]
    classes = tf.tile(tf.constant([features.LABELS]),
                      [tf.shape(probabilities)[0], 1])
    return {'classes': classes, 'scores': probabilities}

  @tf.function(
      input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def infer_examples(self, examples):
    served = self.serve_examples(examples)
    return {key: served[key] for key in BULK_INFERENCE_OUTPUTS
            if key in served}

  @tf.function(
      input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def transform_examples(self, examples):
    return self.tft_layer(tf.io.parse_example(examples, self._labelled_spec))


def export_serving_model(model: keras.Model,
                         tft_output: tft.TFTransformOutput,
                         export_dir: str, temperature: float = 1.0,
                         topic_temperature: float = 1.0) -> None:
  """Writes `model` with its preprocessing, its probabilities scaled by
  `temperature` (a topic head's by `topic_temperature`), as a SavedModel
  to `export_dir`."""
  module = SentimentServingModule(model, tft_output, temperature,
                                  topic_temperature)
  tf.saved_model.save(module, export_dir, signatures={
      SERVING_SIGNATURE: module.serve_text,
      EXAMPLES_SIGNATURE: module.serve_examples,
      CLASSIFICATION_SIGNATURE: module.classify_examples,
      TRANSFORM_SIGNATURE: module.transform_examples,
      BULK_INFERENCE_SIGNATURE: module.infer_examples,
  })
  _mark_classification_signature(export_dir)
  write_warmup_requests(export_dir)


def _mark_classification_signature(export_dir: str) -> None:
  """Gives the classification signature TF Serving's Classify method name.

  tf.saved_model.save writes every signature as a Predict signature and
  has no argument for another method, so the SavedModel proto is edited
  and its fingerprint rewritten, as tf.saved_model.save writes it.
  """
  saved_model = _read_saved_model(export_dir)
  for meta_graph in saved_model.meta_graphs:
    meta_graph.signature_def[CLASSIFICATION_SIGNATURE].method_name = (
        tf.saved_model.CLASSIFY_METHOD_NAME)
  with tf.io.gfile.GFile(os.path.join(export_dir, 'saved_model.pb'),
                         'wb') as f:
    f.write(saved_model.SerializeToString(deterministic=True))
  fingerprinting_utils.write_fingerprint(export_dir)


def _read_saved_model(export_dir: str) -> saved_model_pb2.SavedModel:
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(export_dir, 'saved_model.pb'),
                         'rb') as f:
    saved_model.ParseFromString(f.read())
  return saved_model


def signature_outputs(export_dir: str,
                      signature: str = EXAMPLES_SIGNATURE) -> List[str]:
  """The output names of the export's `signature`, read from its
  saved_model.pb (nothing is loaded); [] when it has no such signature."""
  meta_graph = _read_saved_model(export_dir).meta_graphs[0]
  if signature not in meta_graph.signature_def:
    return []
  return sorted(meta_graph.signature_def[signature].outputs)


def write_warmup_requests(export_dir: str) -> None:
  """Writes TF Serving warm-up records: Predict requests on raw text."""
  path = os.path.join(export_dir, WARMUP_REQUESTS_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for texts in (WARMUP_TEXTS[:1], WARMUP_TEXTS):
      request = predict_pb2.PredictRequest(
          model_spec=model_pb2.ModelSpec(signature_name=SERVING_SIGNATURE))
      request.inputs[features.TEXT_KEY].CopyFrom(
          tf.make_tensor_proto(list(texts), dtype=tf.string))
      writer.write(prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request)
      ).SerializeToString())
