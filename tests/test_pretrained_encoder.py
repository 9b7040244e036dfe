"""A pretrained keras-hub encoder as the Transformer, loaded from a preset on
local disk (a hub cannot be reached here): a tiny BERT saved with
keras-hub's own save_to_preset stands in for a downloaded one. Transform
tokenises as the preset's tokenizer does, the Trainer fine-tunes the
preset's weights, and the export serves raw text without keras-hub."""

import collections
import dataclasses
import re

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from finsent.data import loaders
from finsent.configs import features
from finsent.models import pretrained_encoder
from finsent.models import trainer
from finsent import configs
from finsent.commands import run as run_command
from finsent.commands import train_worker
from finsent.models.trim_padding import TrimPadding
from tests.conftest import HEADLINES
from tests.conftest import predict_in_fresh_process
from tests.conftest import trainer_fn_args
from tests.conftest import transform_records

SEQUENCE_LENGTH = 16
SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def _save_tiny_bert(directory, words):
  """A 1-block BERT and its WordPiece tokenizer (the bundled sample's
  `words` most frequent words, and '##s'), saved as a keras-hub preset."""
  counts = collections.Counter(
      word for record in loaders.read_records(configs.SAMPLE_DATA)
      for word in re.findall(r'\w+|[^\w\s]', record.text.lower()))
  vocabulary = SPECIAL_TOKENS + [w for w, _ in counts.most_common(words)] + [
      '##s']
  keras.utils.set_random_seed(1)
  keras_hub.models.BertBackbone(
      vocabulary_size=len(vocabulary), num_layers=1, num_heads=2,
      hidden_dim=16, intermediate_dim=32,
      max_sequence_length=64).save_to_preset(directory)
  keras_hub.models.BertTokenizer(
      vocabulary=vocabulary, lowercase=True).save_to_preset(directory)
  return directory


@pytest.fixture(scope='module')
def preset(tmp_path_factory):
  return _save_tiny_bert(str(tmp_path_factory.mktemp('tiny_bert')), 400)


@pytest.fixture(scope='module')
def transformed(preset, tmp_path_factory):
  records = list(loaders.read_records(configs.SAMPLE_DATA))
  return transform_records(
      str(tmp_path_factory.mktemp('transformed_for_encoder')),
      {'train': records[:300], 'eval': records[300:360]},
      dataclasses.replace(configs.PreprocessingConfig(), max_tokens=12,
                          pretrained_encoder=preset,
                          encoder_sequence_length=SEQUENCE_LENGTH))


def test_transform_tokenises_as_the_presets_own_preprocessor(preset,
                                                             transformed):
  import tensorflow_transform as tft
  odd = ['Acme shares jump 12% after earnings', '', '😀😀 🚀',
         'Überraschung: 利润大增', 'shares ' * 400, '$ACME -5% https://t.co/x']
  ours = tft.TFTransformOutput(
      transformed.transform_graph).transform_raw_features(
          {features.TEXT_KEY: tf.constant([[t] for t in odd])})
  theirs = keras_hub.models.TextClassifierPreprocessor.from_preset(
      preset, sequence_length=SEQUENCE_LENGTH)(tf.constant(odd))
  assert set(ours) == {features.TOKEN_IDS_KEY} | {
      'encoder_' + name for name in theirs}
  for name, value in theirs.items():
    np.testing.assert_array_equal(ours['encoder_' + name].numpy(),
                                  tf.cast(value, tf.int64).numpy())
  ids = ours[pretrained_encoder.TOKEN_IDS_KEY].numpy()
  # [CLS] pieces [SEP], padded: the empty text is [CLS] [SEP]; the long one
  # is truncated; emoji and other scripts are [UNK] pieces.
  cls, sep, unk = (SPECIAL_TOKENS.index(t) for t in ('[CLS]', '[SEP]',
                                                     '[UNK]'))
  assert ids[1].tolist() == [cls, sep] + [0] * (SEQUENCE_LENGTH - 2)
  assert ids[4][0] == cls and ids[4][-1] == sep and 0 not in ids[4]
  assert unk in ids[2] and unk in ids[3]


def test_the_classifier_starts_from_the_presets_weights(preset):
  model = pretrained_encoder.build_pretrained_encoder_classifier(
      preset, SEQUENCE_LENGTH, dropout=0.2)
  loaded = keras_hub.models.Backbone.from_preset(preset)
  backbone, = [layer for layer in model.layers
               if isinstance(layer, keras_hub.models.Backbone)]
  assert backbone.count_params() == loaded.count_params()
  for ours, theirs in zip(backbone.weights, loaded.weights):
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                  keras.ops.convert_to_numpy(theirs))
  assert sorted(model.input) == ['encoder_padding_mask',
                                 'encoder_segment_ids', 'encoder_token_ids']
  with pytest.raises(ValueError, match='sequence_length 65 is longer than '
                     'the pretrained encoder .* takes \\(64\\)'):
    pretrained_encoder.build_pretrained_encoder_classifier(preset, 65)
  batch = {k: np.ones((2, SEQUENCE_LENGTH), np.int64) for k in model.input}
  probabilities = keras.ops.convert_to_numpy(model(batch))
  assert probabilities.shape == (2, len(features.LABELS))
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_the_encoder_with_a_topic_head_outputs_both(preset):
  """Both heads read the same mean-pooled vector of one backbone."""
  model = pretrained_encoder.build_pretrained_encoder_classifier(
      preset, SEQUENCE_LENGTH, num_topics=len(features.TOPICS))
  assert len([layer for layer in model.layers
              if isinstance(layer, keras_hub.models.Backbone)]) == 1
  batch = {k: np.ones((2, SEQUENCE_LENGTH), np.int64) for k in model.input}
  outputs = model(batch)
  assert {head: tuple(outputs[head].shape) for head in outputs} == {
      features.SENTIMENT_HEAD: (2, len(features.LABELS)),
      features.TOPIC_HEAD: (2, len(features.TOPICS))}
  with pytest.raises(ValueError, match="a topic head reads the mean-pooled "
                     "sequence: head 'cls' has one output"):
    pretrained_encoder.build_pretrained_encoder_classifier(
        preset, SEQUENCE_LENGTH, num_topics=len(features.TOPICS), head='cls')


def _fn_args(transformed, tmp_path, preset):
  config = dataclasses.replace(
      configs.PipelineConfig(), preprocessing=dataclasses.replace(
          configs.PreprocessingConfig(), pretrained_encoder=preset))
  return trainer_fn_args(transformed, tmp_path,
                         config.trainer_custom_config('transformer'),
                         train_steps=6)


def test_run_fn_fine_tunes_and_the_export_serves_without_keras_hub(
    preset, transformed, tmp_path):
  summary = trainer.run_fn(_fn_args(transformed, tmp_path, preset))
  assert summary['pretrained_encoder'] == preset
  fine_tuning = configs.FineTuningConfig()
  assert summary['hyperparameters'] == {
      'dropout': fine_tuning.dropout, 'head': fine_tuning.head,
      'trim_padding': fine_tuning.trim_padding}
  # Fine-tuning's own learning rate, schedule and batch, not the
  # from-scratch models'.
  assert summary['base_learning_rate'] == fine_tuning.learning_rate
  assert summary['learning_rate_schedule'] == (
      fine_tuning.learning_rate_schedule)
  assert summary['global_batch_size'] == fine_tuning.batch_size
  texts = [text for text, _ in HEADLINES]
  served = predict_in_fresh_process(str(tmp_path / 'serving'), texts)
  # load_saved_model.py fails if keras_hub, or any project module, had to
  # be imported to serve.
  assert served['modules'] == []
  probabilities = np.array(served['probabilities'])
  assert probabilities.shape == (len(texts), len(features.LABELS))
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  assert served['labels'] == served['examples_labels']


def _weights(layer):
  return [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]


def _changed(before, layer):
  return any(not np.array_equal(b, a) for b, a in zip(before, _weights(layer)))


def test_a_frozen_encoder_keeps_its_weights_while_its_head_learns(preset):
  """LP-FT's mechanism: set_encoder_trainable and a recompile freeze the
  backbone alone; unfrozen and recompiled, it learns again."""
  model = pretrained_encoder.build_pretrained_encoder_classifier(
      preset, SEQUENCE_LENGTH)
  backbone, = [layer for layer in model.layers
               if isinstance(layer, keras_hub.models.Backbone)]
  head = model.get_layer('classifier')
  rng = np.random.default_rng(0)
  batch = {k: rng.integers(1, 50, (8, SEQUENCE_LENGTH)).astype(np.int64)
           for k in model.input}
  batch['encoder_padding_mask'] = np.ones((8, SEQUENCE_LENGTH), np.int64)
  batch['encoder_segment_ids'] = np.zeros((8, SEQUENCE_LENGTH), np.int64)
  labels = rng.integers(0, len(features.LABELS), 8)

  def fit_once():
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss='sparse_categorical_crossentropy')
    encoder, classifier = _weights(backbone), _weights(head)
    model.fit(batch, labels, epochs=1, verbose=0)
    return _changed(encoder, backbone), _changed(classifier, head)

  pretrained_encoder.set_encoder_trainable(model, False)
  assert fit_once() == (False, True)
  pretrained_encoder.set_encoder_trainable(model, True)
  assert fit_once() == (True, True)
  with pytest.raises(ValueError, match='holds no pretrained encoder to '
                     'freeze'):
    pretrained_encoder.set_encoder_trainable(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), False)


def test_run_fn_trains_the_head_first_when_asked(preset, transformed,
                                                 tmp_path):
  config = dataclasses.replace(
      configs.PipelineConfig(),
      preprocessing=dataclasses.replace(configs.PreprocessingConfig(),
                                        pretrained_encoder=preset),
      fine_tuning=dataclasses.replace(configs.FineTuningConfig(),
                                      head_epochs=1))
  custom_config = config.trainer_custom_config('transformer')
  assert (custom_config['training']['head_epochs'],
          custom_config['training']['head_learning_rate']) == (
              1, configs.FineTuningConfig().head_learning_rate)
  summary = trainer.run_fn(trainer_fn_args(transformed, tmp_path,
                                           custom_config, train_steps=6))
  assert summary['head_epochs'] == 1
  assert summary['head_train_seconds'] > 0
  assert summary['epochs'] >= 1
  served = predict_in_fresh_process(str(tmp_path / 'serving'),
                                    [text for text, _ in HEADLINES])
  assert served['labels'] == served['examples_labels']
  # Without head_epochs (the default) there is no head phase.
  assert configs.FineTuningConfig().head_epochs == 0


def test_transform_of_no_or_another_preset_is_refused(transformed_sample,
                                                      transformed, tmp_path,
                                                      preset):
  with pytest.raises(ValueError, match='has no encoder_\\* features for the '
                     'pretrained encoder .*: run Transform with the same'):
    trainer.run_fn(_fn_args(transformed_sample, tmp_path, preset))
  other = _save_tiny_bert(str(tmp_path / 'other_bert'), 100)
  with pytest.raises(ValueError, match='the Transform output was not '
                     f'tokenised by the pretrained encoder {other} .*run '
                     'Transform with the same pretrained_encoder'):
    trainer.run_fn(_fn_args(transformed, tmp_path, other))
  assert not (tmp_path / 'serving').exists()


def test_the_configs_of_a_fine_tuned_transformer(preset):
  config = dataclasses.replace(
      configs.PipelineConfig(), preprocessing=dataclasses.replace(
          configs.PreprocessingConfig(), pretrained_encoder=preset))
  transformer = config.trainer_custom_config('transformer')
  assert transformer['pretrained_encoder'] == preset
  fine_tuning = configs.FineTuningConfig()
  assert transformer['hyperparameters'] == {
      'dropout': fine_tuning.dropout, 'head': fine_tuning.head,
      'trim_padding': fine_tuning.trim_padding}
  assert {name: transformer['training'][name] for name in (
      'learning_rate', 'batch_size', 'group_by_length', 'max_epochs',
      'learning_rate_schedule', 'warmup_epochs', 'word_vectors')} == {
          'learning_rate': fine_tuning.learning_rate,
          'batch_size': fine_tuning.batch_size,
          'group_by_length': fine_tuning.group_by_length,
          'max_epochs': fine_tuning.epochs,
          'learning_rate_schedule': fine_tuning.learning_rate_schedule,
          'warmup_epochs': fine_tuning.warmup_epochs, 'word_vectors': None}
  rnn = config.trainer_custom_config('rnn')
  assert rnn['pretrained_encoder'] is None
  assert rnn == {**configs.PipelineConfig().trainer_custom_config('rnn')}
  with pytest.raises(ValueError, match='replaces the transformer, not the rnn'):
    trainer.build_model('rnn', 10, SEQUENCE_LENGTH, {}, preset)


def test_the_transformer_is_the_packaged_encoder_unless_none(capsys):
  assert configs.PipelineConfig().preprocessing.pretrained_encoder == (
      configs.DEFAULT_ENCODER)
  for value in ('none', 'None'):
    _, _, config = run_command.parse(['run', '--pretrained_encoder', value])
    assert config.preprocessing.pretrained_encoder is None
    assert config.trainer_custom_config('transformer')[
        'hyperparameters'] == dataclasses.asdict(configs.TransformerConfig())


def test_trimming_the_padding_changes_no_probability(preset):
  """The classifier cut to each batch's longest text gives what the
  whole padded length gives."""
  texts = tf.constant(['shares fall', 'the company reports higher profit '
                       'and raises its outlook for the year'])
  batch = pretrained_encoder.encoder_features(texts, preset, SEQUENCE_LENGTH)
  assert int(tf.reduce_max(tf.reduce_sum(
      batch['encoder_padding_mask'], axis=1))) < SEQUENCE_LENGTH
  probabilities = {}
  for trim in (True, False):
    keras.utils.set_random_seed(3)
    model = pretrained_encoder.build_pretrained_encoder_classifier(
        preset, SEQUENCE_LENGTH, trim_padding=trim)
    assert any(isinstance(layer, TrimPadding)
               for layer in model.layers) == trim
    probabilities[trim] = keras.ops.convert_to_numpy(model(batch))
  np.testing.assert_allclose(probabilities[True], probabilities[False],
                             atol=1e-5)
  # The longest is at least one piece, even for an all-padding batch.
  empty = {k: tf.zeros((2, SEQUENCE_LENGTH), tf.int64) for k in batch}
  assert TrimPadding(mask_key='encoder_padding_mask')(empty)[
      'encoder_padding_mask'].shape == (2, 1)
  layer = TrimPadding(mask_key='encoder_padding_mask', name='t')
  assert TrimPadding.from_config(layer.get_config()).mask_key == (
      'encoder_padding_mask')


def test_batches_grouped_by_length_hold_every_example_once():
  lengths = np.random.default_rng(0).integers(3, 120, size=500)
  mask = (np.arange(128)[None, :] < lengths[:, None]).astype(np.int64)
  examples = tf.data.Dataset.from_tensor_slices(
      ({pretrained_encoder.PADDING_MASK_KEY: mask,
        'index': np.arange(500)}, np.zeros(500, np.int64)))
  seen, spans = [], []
  for x, _ in trainer.shuffled_batches(
      examples, 32, seed=1, static_shapes=False, buffer_size=500,
      length_mask_key=pretrained_encoder.PADDING_MASK_KEY):
    assert len(x['index']) <= 32
    seen += x['index'].numpy().tolist()
    batch_lengths = lengths[x['index'].numpy()]
    buckets = np.searchsorted(trainer.LENGTH_BUCKET_BOUNDARIES,
                              batch_lengths, side='right')
    assert len(set(buckets)) == 1, batch_lengths
    spans.append(batch_lengths.max() - batch_lengths.min())
  assert sorted(seen) == list(range(500))
  # Grouped: far less padding than random batches of 3..119 pieces.
  assert np.mean(spans) < 40


def test_bad_presets_are_refused(tmp_path, capsys):
  empty, backbone_only = tmp_path / 'empty', tmp_path / 'backbone_only'
  for directory in (empty, backbone_only):
    directory.mkdir()
  (backbone_only / 'config.json').write_text('{}')
  for preset, message in (
      (str(tmp_path / 'nowhere'), 'no such directory; a pretrained encoder '
       'is a keras-hub preset directory'),
      (str(empty), 'not a keras-hub text preset: it has no config.json'),
      (str(backbone_only),
       'not a keras-hub text preset: it has no tokenizer.json')):
    with pytest.raises(SystemExit) as exited:
      train_worker.main(['--architecture', 'transformer',
                         '--transform_graph', 'g',
                         '--transformed_examples', 'e',
                         '--serving_model_dir', 's', '--model_run_dir', 'm',
                         '--pretrained_encoder', preset])
    assert exited.value.code == 2
    assert f'argument --pretrained_encoder: {preset}: {message}' in (
        capsys.readouterr().err)
  # Handles and keras-hub's own names are left to keras-hub to fetch.
  for preset in ('kaggle://keras/bert/keras/bert_tiny_en_uncased/3',
                 'bert_tiny_en_uncased'):
    assert pretrained_encoder.check_preset(preset) == preset
