"""Model builders, the training helpers of run_fn, and the exported signatures."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from finsent.models import calibration
from finsent.models import export
from finsent.configs import features
from finsent.models import rnn
from finsent.models import trainer
from finsent.models import transformer
from finsent import configs
from tests.conftest import EXPORT_SEQUENCE_LENGTH
from tests.conftest import HEADLINES
from tests.conftest import TOPIC_HEADLINES
from tests.conftest import predict_in_fresh_process

SEQUENCE_LENGTH = 12
VOCABULARY_SIZE = 50


@pytest.mark.parametrize('builder,hyperparameters', [
    (rnn.build_rnn_classifier, dataclasses.asdict(configs.RnnConfig())),
    (rnn.build_rnn_classifier, {'cell': 'gru', 'rnn_units': 8}),
    (transformer.build_transformer_classifier,
     dataclasses.asdict(configs.TransformerConfig())),
])
def test_builders_output_probabilities(builder, hyperparameters):
  model = builder(vocabulary_size=VOCABULARY_SIZE,
                  sequence_length=SEQUENCE_LENGTH, **hyperparameters)
  ids = np.random.default_rng(0).integers(
      1, VOCABULARY_SIZE, size=(4, SEQUENCE_LENGTH))
  ids[:, 5:] = 0  # padding
  probabilities = model({features.TOKEN_IDS_KEY: ids}).numpy()
  assert probabilities.shape == (4, len(features.LABELS))
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize('builder', [rnn.build_rnn_classifier,
                                     transformer.build_transformer_classifier])
def test_padding_is_masked(builder):
  """Padding ids do not change the prediction: the models read real tokens only."""
  model = builder(vocabulary_size=VOCABULARY_SIZE,
                  sequence_length=SEQUENCE_LENGTH)
  short = np.zeros((1, SEQUENCE_LENGTH), dtype=np.int64)
  short[0, :4] = [5, 6, 7, 8]
  # The same tokens, with the padding region's embedding rows perturbed:
  # if padding were read, changing the embedding of id 0 would matter.
  before = model({features.TOKEN_IDS_KEY: short}).numpy()
  embedding = model.get_layer(index=1)
  weights = embedding.get_weights()
  weights[0][0] += 10.0
  embedding.set_weights(weights)
  after = model({features.TOKEN_IDS_KEY: short}).numpy()
  np.testing.assert_allclose(before, after, atol=1e-5)


@pytest.mark.parametrize('builder,hyperparameters', [
    (rnn.build_rnn_classifier, {'embedding_dim': 8, 'rnn_units': 4}),
    (transformer.build_transformer_classifier, {'embedding_dim': 8,
                                                'num_heads': 2}),
])
def test_builders_with_a_topic_head_output_both(builder, hyperparameters):
  model = builder(vocabulary_size=VOCABULARY_SIZE,
                  sequence_length=SEQUENCE_LENGTH,
                  num_topics=len(features.TOPICS), **hyperparameters)
  ids = np.random.default_rng(0).integers(
      1, VOCABULARY_SIZE, size=(4, SEQUENCE_LENGTH))
  outputs = model({features.TOKEN_IDS_KEY: ids})
  assert sorted(outputs) == [features.SENTIMENT_HEAD, features.TOPIC_HEAD]
  for head, classes in ((features.SENTIMENT_HEAD, len(features.LABELS)),
                        (features.TOPIC_HEAD, len(features.TOPICS))):
    probabilities = outputs[head].numpy()
    assert probabilities.shape == (4, classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_builders_reject_bad_arguments():
  with pytest.raises(ValueError, match='cell must be one of'):
    rnn.build_rnn_classifier(10, 4, cell='rnn')
  with pytest.raises(ValueError, match='must divide embedding_dim'):
    transformer.build_transformer_classifier(10, 4, embedding_dim=10,
                                             num_heads=4)
  with pytest.raises(ValueError, match='architecture must be one of'):
    trainer.build_model('cnn', 10, 4, {})
  for num_topics in (1, -3):
    with pytest.raises(ValueError, match='num_topics must be 0'):
      rnn.build_rnn_classifier(10, 4, num_topics=num_topics)


def _labelled(labels, ids=None):
  ids = np.zeros((len(labels), 2), np.int64) if ids is None else ids
  return tf.data.Dataset.from_tensor_slices(
      ({features.TOKEN_IDS_KEY: ids}, np.array(labels, np.int64)))


def test_split_for_early_stopping_is_disjoint_and_order_free():
  ids = np.arange(400, dtype=np.int64).reshape(200, 2)
  examples = _labelled(range(200), ids)
  fit, held_out = trainer.split_for_early_stopping(examples, 0.1)
  fit_labels = {int(y) for _, y in fit}
  held_labels = {int(y) for _, y in held_out}
  assert fit_labels.isdisjoint(held_labels)
  assert fit_labels | held_labels == set(range(200))
  assert 5 <= len(held_labels) <= 40
  _, reversed_held_out = trainer.split_for_early_stopping(
      _labelled(range(199, -1, -1), ids[::-1].copy()), 0.1)
  assert {int(y) for _, y in reversed_held_out} == held_labels


def test_class_weights_modes_and_missing_class():
  labels = _labelled([0, 0, 0, 1, 2, 2])
  assert trainer.class_weights(labels, 'balanced') == pytest.approx(
      {0: 6 / 9, 1: 2.0, 2: 1.0})
  assert trainer.class_weights(labels, 'sqrt') == pytest.approx(
      {0: (6 / 9) ** 0.5, 1: 2.0 ** 0.5, 2: 1.0})
  assert trainer.class_weights(labels, 'none') is None
  for weighting in trainer.CLASS_WEIGHTINGS:
    with pytest.raises(ValueError, match='no examples labelled positive'):
      trainer.class_weights(_labelled([0, 1, 1]), weighting)
  with pytest.raises(ValueError, match='class weighting must be one of'):
    trainer.class_weights(labels, 'inverse')


def test_export_serves_raw_text_in_a_fresh_process(exported_model):
  export_dir, _, _ = exported_model
  texts = [t for t, _ in HEADLINES] + ['', 'Ünïcödé 😀 only']
  answer = predict_in_fresh_process(export_dir, texts)
  assert answer['modules'] == []
  assert answer['signatures'] == sorted([
      export.SERVING_SIGNATURE, export.EXAMPLES_SIGNATURE,
      export.CLASSIFICATION_SIGNATURE, export.TRANSFORM_SIGNATURE,
      export.BULK_INFERENCE_SIGNATURE])
  assert len(answer['probabilities']) == len(texts)
  for row in answer['probabilities']:
    assert len(row) == 3 and sum(row) == pytest.approx(1.0, abs=1e-5)
  assert answer['labels'][:6] == [label for _, label in HEADLINES]
  assert answer['examples_labels'] == answer['labels']


def test_export_matches_the_keras_model(exported_model):
  """The SavedModel's raw-text signature = TFT layer + Keras model in-process."""
  export_dir, model, tft_output = exported_model
  loaded = tf.saved_model.load(export_dir)
  texts = tf.constant([t for t, _ in HEADLINES])
  served = loaded.signatures[export.SERVING_SIGNATURE](text=texts)
  transformed = tft_output.transform_raw_features(
      {'text': tf.reshape(texts, [-1, 1])}, drop_unused_features=True)
  direct = model({features.TOKEN_IDS_KEY: transformed[features.TOKEN_IDS_KEY]})
  np.testing.assert_allclose(served['probabilities'].numpy(), direct.numpy(),
                             atol=1e-5)


def test_export_bakes_in_the_temperature(exported_model, tmp_path):
  """The served probabilities are the model's at temperature T."""
  export_dir, model, tft_output = exported_model
  tempered_dir = str(tmp_path / 'tempered')
  export.export_serving_model(model, tft_output, tempered_dir,
                              temperature=2.5)
  texts = tf.constant([t for t, _ in HEADLINES])
  plain = tf.saved_model.load(export_dir).signatures[
      export.SERVING_SIGNATURE](text=texts)
  tempered = tf.saved_model.load(tempered_dir).signatures[
      export.SERVING_SIGNATURE](text=texts)
  expected = calibration.scale_probabilities(
      plain['probabilities'].numpy(), 2.5)
  np.testing.assert_allclose(tempered['probabilities'].numpy(), expected,
                             atol=1e-5)
  assert tempered['label'].numpy().tolist() == plain['label'].numpy().tolist()
  with pytest.raises(ValueError, match='temperature must be positive'):
    export.SentimentServingModule(model, tft_output, temperature=0.0)


def test_predict_probabilities_reads_every_example_in_order():
  model = rnn.build_rnn_classifier(VOCABULARY_SIZE, SEQUENCE_LENGTH,
                                   embedding_dim=4, rnn_units=4)
  ids = np.random.default_rng(0).integers(1, VOCABULARY_SIZE,
                                          size=(2100, SEQUENCE_LENGTH))
  labels = np.arange(2100) % 3
  examples = tf.data.Dataset.from_tensor_slices(
      ({features.TOKEN_IDS_KEY: ids}, labels))
  probabilities, read_labels = trainer.predict_probabilities(model, examples)
  assert read_labels.tolist() == labels.tolist()
  np.testing.assert_allclose(
      probabilities, model.predict({features.TOKEN_IDS_KEY: ids}, verbose=0),
      atol=1e-5)


def test_calibration_needs_held_out_examples():
  model = rnn.build_rnn_classifier(VOCABULARY_SIZE, SEQUENCE_LENGTH,
                                   embedding_dim=4, rnn_units=4)
  ids = np.ones((6, SEQUENCE_LENGTH), np.int64)
  examples = tf.data.Dataset.from_tensor_slices(
      ({features.TOKEN_IDS_KEY: ids}, np.arange(6) % 3))
  nothing = examples.take(0)
  with pytest.raises(ValueError, match='no held-out examples to fit the '
                     'temperature on.*--calibration none'):
    trainer.calibrate(model, nothing, examples, 'temperature')
  report = trainer.calibrate(model, nothing, examples, 'none')
  assert report['temperature'] == 1.0 and report['held_out'] is None
  assert report['eval']['ece_after'] == report['eval']['ece_before']
  with pytest.raises(ValueError, match='calibration must be one of'):
    trainer.calibrate(model, examples, examples, 'platt')


def test_transform_signature_gives_tfma_the_label(exported_model):
  export_dir, _, _ = exported_model
  loaded = tf.saved_model.load(export_dir)
  example = tf.train.Example(features=tf.train.Features(feature={
      'text': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'Up'])),
      'label': tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[b'positive']))}))
  out = loaded.signatures[export.TRANSFORM_SIGNATURE](
      examples=tf.constant([example.SerializeToString()]))
  assert out[features.LABEL_ID_KEY].numpy().tolist() == [2]
  assert out[features.TOKEN_IDS_KEY].shape == (1, EXPORT_SEQUENCE_LENGTH)


def test_export_with_a_topic_head_serves_topics_in_a_fresh_process(
    exported_topic_model):
  """serving_default gives the topic and its probabilities beside the
  sentiment; each head learned from the rows carrying its label."""
  export_dir, _, _ = exported_topic_model
  texts = [t for t, _ in HEADLINES] + [t for t, _ in TOPIC_HEADLINES]
  answer = predict_in_fresh_process(export_dir, texts)
  assert answer['modules'] == []
  assert answer['outputs'] == sorted([
      features.LABEL_OUTPUT, features.PROBABILITIES_OUTPUT,
      features.TOPIC_OUTPUT, features.TOPIC_PROBABILITIES_OUTPUT])
  assert answer['labels'][:len(HEADLINES)] == [l for _, l in HEADLINES]
  assert answer['topics'][len(HEADLINES):] == [t for _, t in TOPIC_HEADLINES]
  assert all(topic in features.TOPICS for topic in answer['topics'])
  for row in answer['topic_probabilities']:
    assert len(row) == len(features.TOPICS)
    assert sum(row) == pytest.approx(1.0, abs=1e-5)
  assert answer['examples_labels'] == answer['labels']


def test_export_with_a_topic_head_bakes_in_each_temperature(
    exported_topic_model, tmp_path):
  export_dir, model, tft_output = exported_topic_model
  tempered_dir = str(tmp_path / 'tempered')
  export.export_serving_model(model, tft_output, tempered_dir,
                              temperature=1.0, topic_temperature=3.0)
  texts = tf.constant([t for t, _ in TOPIC_HEADLINES])
  plain = tf.saved_model.load(export_dir).signatures[
      export.SERVING_SIGNATURE](text=texts)
  tempered = tf.saved_model.load(tempered_dir).signatures[
      export.SERVING_SIGNATURE](text=texts)
  np.testing.assert_allclose(
      tempered[features.TOPIC_PROBABILITIES_OUTPUT].numpy(),
      calibration.scale_probabilities(
          plain[features.TOPIC_PROBABILITIES_OUTPUT].numpy(), 3.0),
      atol=1e-5)
  np.testing.assert_allclose(tempered[features.PROBABILITIES_OUTPUT].numpy(),
                             plain[features.PROBABILITIES_OUTPUT].numpy(),
                             atol=1e-6)
  with pytest.raises(ValueError, match='topic_temperature must be positive'):
    export.SentimentServingModule(model, tft_output, topic_temperature=-1.0)


def test_transform_signature_gives_tfma_the_topic(exported_topic_model):
  export_dir, _, _ = exported_topic_model
  loaded = tf.saved_model.load(export_dir)
  def example(**values):
    return tf.train.Example(features=tf.train.Features(feature={
        key: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[value.encode()])) for key, value in values.items()}
    )).SerializeToString()
  out = loaded.signatures[export.TRANSFORM_SIGNATURE](examples=tf.constant([
      example(text='Fed holds', topic='Fed | Central Banks'),
      example(text='Up', label='positive')]))
  assert out[features.TOPIC_ID_KEY].numpy().tolist() == [1, -1]
  assert out[features.LABEL_ID_KEY].numpy().tolist() == [-1, 2]


def test_export_refuses_outputs_it_cannot_serve(exported_model):
  _, model, tft_output = exported_model
  pooled = model.get_layer('probabilities').input
  two = keras.Model(model.input, {'sentiment': model.output,
                                  'mood': keras.layers.Dense(2)(pooled)})
  with pytest.raises(ValueError, match="exactly 'sentiment' and 'topic'"):
    export.SentimentServingModule(two, tft_output)
