"""TFX Transform `preprocessing_fn`: raw text to padded token ids, label to id.

Runs on Beam inside Transform (analysis: the token vocabulary) and again,
as a saved graph, inside every exported model, so serving applies exactly
the training-time preprocessing.
"""

from typing import Any, Dict

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

from models import features

# Stable placeholder tokens for the parts of a feed whose exact value says
# little about sentiment but whose presence does ("down 12%" vs "down 12").
URL_TOKEN = 'xxurl'
TICKER_TOKEN = 'xxticker'
PERCENT_UP_TOKEN = 'xxpercentup'
PERCENT_DOWN_TOKEN = 'xxpercentdown'
PERCENT_TOKEN = 'xxpercent'
MONEY_TOKEN = 'xxmoney'
NUMBER_TOKEN = 'xxnum'

_NUMBER = r'\d+(?:[.,]\d+)*'
# Applied in order on lowercased text; RE2 syntax (no look-behind).
_NORMALISATION_RULES = (
    (r'https?://\S+|www\.\S+', f' {URL_TOKEN} '),
    (r'\$[a-z][a-z0-9]*(?:\.[a-z])?', f' {TICKER_TOKEN} '),
    (r'(^|[\s(])\+' + _NUMBER + r'\s?%', rf'\1 {PERCENT_UP_TOKEN} '),
    (r'(^|[\s(])[-\x{2212}]' + _NUMBER + r'\s?%', rf'\1 {PERCENT_DOWN_TOKEN} '),
    (_NUMBER + r'\s?%', f' {PERCENT_TOKEN} '),
    (r'[$\x{20ac}\x{a3}]' + _NUMBER + r'(?:\s?(?:[kmb]n?|million|billion|trillion)\b)?',
     f' {MONEY_TOKEN} '),
    (_NUMBER, f' {NUMBER_TOKEN} '),
)

def normalize_text(text: tf.Tensor) -> tf.Tensor:
  """Lowercases and replaces URLs, cashtags, percentages, money and numbers."""
  text = tf.strings.lower(text, encoding='utf-8')
  for pattern, rewrite in _NORMALISATION_RULES:
    text = tf.strings.regex_replace(text, pattern, rewrite)
  return text


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
  """[N] strings to [N, (tokens)]: words, punctuation runs and emoji apart."""
  return tf_text.UnicodeScriptTokenizer().tokenize(normalize_text(text))


def _dense_strings(x) -> tf.Tensor:
  """A [N] or [N, 1] dense, or sparse, string feature as [N] strings."""
  if isinstance(x, tf.SparseTensor):
    x = tf.sparse.to_dense(
        tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
        default_value='')
  return tf.reshape(x, [-1])


def label_to_id(label: tf.Tensor) -> tf.Tensor:
  """[N] label names to [N] int64 ids in `features.LABELS` order, -1 if unknown."""
  matches = tf.equal(tf.expand_dims(label, 1), tf.constant(features.LABELS))
  return tf.where(tf.reduce_any(matches, axis=1),
                  tf.argmax(tf.cast(matches, tf.int64), axis=1),
                  tf.constant(-1, tf.int64))


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """Maps raw `text` (and `label` when present) to model inputs.

  `custom_config` is Transform's: the fields of
  `pipeline.configs.PreprocessingConfig`. Returns `token_ids`: int64
  [N, max_tokens], vocabulary ids shifted by one (0 is padding; the
  `oov_buckets` ids after the vocabulary are for unseen tokens); and `label_id`: int64 [N] when the input has a label.
  """
  tokens = tokenize(_dense_strings(inputs[features.TEXT_KEY]))
  ids = tft.compute_and_apply_vocabulary(
      tokens,
      top_k=custom_config['vocabulary_size'],
      frequency_threshold=custom_config['min_token_frequency'],
      num_oov_buckets=custom_config['oov_buckets'],
      vocab_filename=features.TOKEN_VOCABULARY_NAME)
  outputs = {
      features.TOKEN_IDS_KEY: (ids + 1).to_tensor(
          default_value=features.PADDING_ID,
          shape=[None, custom_config['max_tokens']]),
  }
  if features.LABEL_KEY in inputs:
    outputs[features.LABEL_ID_KEY] = label_to_id(
        _dense_strings(inputs[features.LABEL_KEY]))
  return outputs
