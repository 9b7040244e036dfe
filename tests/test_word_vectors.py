"""Pretrained word vectors (models.word_vectors) as the models' first token
embedding: the text formats, bad files, and the Trainer's embedding
starting from them."""

import argparse
import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from finsent.models import trainer
from finsent.models import word_vectors
from finsent.commands import cli
from finsent import configs
from finsent.commands import pipeline_flags
from tests.conftest import word_vector
from tests.conftest import FROM_SCRATCH
from tests.conftest import write_word_vectors


def test_glove_and_word2vec_text_formats(tmp_path):
  words = ['shares', 'fell', 'a b']  # GloVe 840B holds words with spaces.
  bom = tmp_path / 'bom.txt'
  bom.write_bytes(b'\xef\xbb\xbf2 3\nshares 0.1 0.2 0.3\nfell 0.4 0.5 0.6\n')
  assert word_vectors.dimension(str(bom)) == 3
  assert sorted(word_vectors.read_vectors(str(bom), ['shares', 'fell'])) == [
      'fell', 'shares']
  for header in (False, True):
    path = write_word_vectors(tmp_path / f'v{header}.txt', words,
                              header=header)
    assert word_vectors.dimension(path) == 8
    # fastText's lines end with a space; a file may end with a blank line.
    with open(path) as f:
      spaced = tmp_path / f'spaced{header}.txt'
      spaced.write_text(''.join(line.rstrip('\n') + ' \r\n' for line in f)
                        + '\n')
    assert word_vectors.dimension(str(spaced)) == 8
    assert sorted(word_vectors.read_vectors(str(spaced), words)) == sorted(
        words)
    read = word_vectors.read_vectors(path, ['fell', 'a b', 'rose'])
    assert sorted(read) == ['a b', 'fell']
    np.testing.assert_allclose(read['fell'], word_vector('fell', 8), atol=1e-6)


def test_bad_files_say_what_and_where(tmp_path):
  with pytest.raises(word_vectors.WordVectorsError, match='no such file'):
    word_vectors.dimension(str(tmp_path / 'missing.txt'))
  single = tmp_path / 'single.txt'
  single.write_text('shares\n')
  with pytest.raises(word_vectors.WordVectorsError,
                     match=r'single.txt:1: not a word-vector text file'):
    word_vectors.dimension(str(single))
  words = tmp_path / 'words.txt'
  words.write_text('shares fell sharply\n')
  with pytest.raises(word_vectors.WordVectorsError,
                     match=r'words.txt:1: expected a word and 2 numbers'):
    word_vectors.dimension(str(words))
  short = tmp_path / 'short.txt'
  short.write_text('shares 0.1 0.2 0.3\nfell 0.1 0.2\n')
  with pytest.raises(word_vectors.WordVectorsError,
                     match=r'short.txt:2: 2 values, expected 3'):
    word_vectors.read_vectors(str(short), ['fell'])
  latin1 = tmp_path / 'latin1.txt'
  latin1.write_bytes(b'shares 0.1 0.2\nbaiss\xe9 0.3 0.4\n')
  with pytest.raises(word_vectors.WordVectorsError,
                     match=r'latin1.txt:2: not UTF-8 text'):
    word_vectors.read_vectors(str(latin1), ['shares'])
  with pytest.raises(word_vectors.WordVectorsError,
                     match='holds a vector for none of the 2 words'):
    word_vectors.read_vectors(write_word_vectors(tmp_path / 'v.txt', ['fell']),
                              ['rose', 'gained'])


def test_the_embedding_starts_from_the_vectors_of_its_vocabulary(tmp_path):
  embedding = keras.layers.Embedding(6, 8)
  embedding.build((None,))
  before = keras.ops.convert_to_numpy(embedding.embeddings).copy()
  path = write_word_vectors(tmp_path / 'v.txt', ['fell', 'rose'])
  rows = word_vectors.embedding_rows(path, ['shares', 'fell', 'rose'])
  assert sorted(rows) == [2, 3]  # row 0 is padding, row 1 'shares'
  scale = word_vectors.initialize_embedding(embedding, rows)
  after = keras.ops.convert_to_numpy(embedding.embeddings)
  # The vectors' directions, at the random rows' spread.
  np.testing.assert_allclose(after[2], scale * word_vector('fell', 8), atol=1e-6)
  np.testing.assert_allclose(after[3], scale * word_vector('rose', 8), atol=1e-6)
  assert after[2:4].std() == pytest.approx(before.std(), rel=1e-5)
  np.testing.assert_array_equal(after[[0, 1, 4, 5]], before[[0, 1, 4, 5]])
  flat = tmp_path / 'flat.txt'
  flat.write_text('fell 0.5 0.5 0.5 0.5 0.5 0.5 0.5 0.5\n')
  with pytest.raises(word_vectors.WordVectorsError,
                     match='are all the same value'):
    word_vectors.initialize_embedding(
        embedding, word_vectors.embedding_rows(str(flat), ['fell']))
  with pytest.raises(word_vectors.WordVectorsError,
                     match='8-dimensional word vectors for a 4-wide'):
    narrow = keras.layers.Embedding(6, 4)
    narrow.build((None,))
    word_vectors.initialize_embedding(narrow, rows)


@pytest.mark.parametrize('architecture', configs.ARCHITECTURES)
def test_trainer_builds_each_model_at_the_vectors_width_from_them(
    architecture, transformed_sample, tmp_path):
  vocabulary = trainer.token_vocabulary(
      tft.TFTransformOutput(transformed_sample.transform_graph))
  path = write_word_vectors(tmp_path / 'v.txt', vocabulary[:30] + ['unseen'])
  config = dataclasses.replace(
      FROM_SCRATCH, training=dataclasses.replace(
          configs.TrainingConfig(), word_vectors=path))
  custom_config = config.trainer_custom_config(architecture)
  fn_args = tfx.components.FnArgs(
      train_files=[os.path.join(transformed_sample.transformed_examples,
                                'Split-train', '*')],
      transform_graph_path=transformed_sample.transform_graph,
      custom_config=custom_config)
  inputs = trainer.prepare_training(fn_args, tf.distribute.get_strategy())
  assert sorted(inputs.word_vector_rows) == list(range(1, 31))
  hyperparameters, learning_rate = trainer.tuned_settings(custom_config,
                                                          None)
  assert hyperparameters['embedding_dim'] == 8
  model = trainer.compile_model(architecture, inputs, hyperparameters,
                                learning_rate, custom_config['training'])
  table = keras.ops.convert_to_numpy(
      trainer.TOKEN_EMBEDDINGS[architecture](model).embeddings)
  # The row Transform's own lookup gives each word holds that word's vector.
  words = [vocabulary[0], vocabulary[29]]
  token_ids = tft.TFTransformOutput(
      transformed_sample.transform_graph).transform_features_layer()(
          {'text': tf.constant([[w] for w in words])})['token_ids'][:, 0]
  for word, row in zip(words, token_ids.numpy()):
    vector = word_vector(word, 8)
    cosine = table[row] @ vector / np.linalg.norm(table[row]) / np.linalg.norm(
        vector)
    assert cosine == pytest.approx(1.0, abs=1e-5)


def test_the_transformers_heads_must_divide_the_vectors_width(tmp_path):
  path = write_word_vectors(tmp_path / 'v.txt', ['fell'], width=6)
  config = dataclasses.replace(
      FROM_SCRATCH, training=dataclasses.replace(
          configs.TrainingConfig(), word_vectors=path))
  with pytest.raises(word_vectors.WordVectorsError,
                     match="6-dimensional word vectors, which the "
                     "Transformer's 4 attention heads do not divide"):
    trainer.tuned_settings(config.trainer_custom_config('transformer'), None)
  # The RNN has no heads; a Tuner picks heads that divide the width.
  assert trainer.tuned_settings(config.trainer_custom_config('rnn'),
                                None)[0]['embedding_dim'] == 6
  assert trainer.tuned_settings(
      config.trainer_custom_config('transformer'),
      {'values': {'embedding_dim': 6, 'num_heads': 2}})[0]['num_heads'] == 2


def test_tuned_width_must_be_the_vectors(tmp_path):
  path = write_word_vectors(tmp_path / 'v.txt', ['fell'])
  config = dataclasses.replace(
      FROM_SCRATCH, training=dataclasses.replace(
          configs.TrainingConfig(), word_vectors=path))
  with pytest.raises(ValueError, match='the Tuner searched embedding_dim '
                     '64, but the word vectors .* are 8-dimensional'):
    trainer.tuned_settings(config.trainer_custom_config('rnn'),
                           {'values': {'embedding_dim': 64}})
  # A pretrained encoder has its own embedding.
  fine_tuned = dataclasses.replace(config, preprocessing=dataclasses.replace(
      config.preprocessing, pretrained_encoder='presets/bert'))
  assert fine_tuned.trainer_custom_config('transformer')['training'][
      'word_vectors'] is None


def test_flags_refuse_bad_vectors_and_local_files_for_a_cluster(
    tmp_path, capsys):
  odd = write_word_vectors(tmp_path / 'odd.txt', ['fell'], width=6)
  for path, message in (
      (str(tmp_path / 'missing.txt'), 'missing.txt: no such file'),
      (odd, "6-dimensional word vectors, which the Transformer's 4 "
       'attention heads do not divide')):
    with pytest.raises(SystemExit) as exited:
      cli.main(['run', '--word_vectors', path, '--pretrained_encoder',
                'none'])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
  # Not where the Transformer does not use them or the Tuner picks heads.
  for flags in (['--enable_tuning'], ['--pretrained_encoder', 'gs://b/p']):
    parser = argparse.ArgumentParser()
    flags_of_run = pipeline_flags.PipelineFlags(parser,
                                                FROM_SCRATCH)
    config = flags_of_run.config(
        parser.parse_args(['--word_vectors', odd, *flags]))
    assert pipeline_flags.word_vectors_heads_problem(config) is None
  local = write_word_vectors(tmp_path / 'v.txt', ['fell'])
  with pytest.raises(SystemExit) as exited:
    cli.main(['compile-kubeflow', '--output', str(tmp_path / 'x.json'),
              '--image', 'gcr.io/p/finsent:1', '--word_vectors', local])
  assert exited.value.code == 2
  assert (f"--word_vectors {local}: a file of this machine, which the "
          "cluster's pods cannot read") in capsys.readouterr().err
