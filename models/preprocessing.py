"""TFX Transform `preprocessing_fn`: raw text to padded token ids, the
sentiment label and the topic to ids.

Runs on Beam inside Transform (analysis: the subword and token
vocabularies) and again, as a saved graph, inside every exported model, so
serving applies exactly the training-time preprocessing.

Tokens are whole words, or (`tokenization='wordpiece'`) WordPiece subwords
whose vocabulary tensorflow-text's learner builds from the training
split's word counts on Beam: 'downgrades' becomes 'downgrade ##s', so a
word seen rarely or never still shares its stem's embedding.

With a pretrained encoder (`pretrained_encoder`, a keras-hub preset) the
raw text also goes through that preset's own tokenizer, into the
`encoder_*` features the fine-tuned Transformer reads
(models.pretrained_encoder).
"""

import os
from typing import Any, Dict, List, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from finsent.configs import features
from finsent.models import pretrained_encoder
from finsent.configs.training import TOKENIZATIONS

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

PLACEHOLDER_TOKENS = (URL_TOKEN, TICKER_TOKEN, PERCENT_UP_TOKEN,
                      PERCENT_DOWN_TOKEN, PERCENT_TOKEN, MONEY_TOKEN,
                      NUMBER_TOKEN)
# WordPiece: a word not covered by the subword vocabulary becomes this
# piece; the placeholders stay whole.
UNKNOWN_PIECE = '[UNK]'
RESERVED_PIECES = (UNKNOWN_PIECE,) + PLACEHOLDER_TOKENS
WORDPIECE_VOCABULARY_FILE = 'wordpiece_vocabulary.txt'


def normalize_text(text: tf.Tensor) -> tf.Tensor:
  """Lowercases and replaces URLs, cashtags, percentages, money and numbers."""
  text = tf.strings.lower(text, encoding='utf-8')
  for pattern, rewrite in _NORMALISATION_RULES:
    text = tf.strings.regex_replace(text, pattern, rewrite)
  return text


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
  """[N] strings to [N, (tokens)]: words, punctuation runs and emoji apart."""
  return tf_text.UnicodeScriptTokenizer().tokenize(normalize_text(text))


class LearnWordpieceVocabulary(tft_beam.experimental.PTransformAnalyzer):
  """Word batches -> a WordPiece vocabulary file of at most
  `vocabulary_size` subwords.

  Input: what `tft.experimental.ptransform_analyzer` hands a PTransform,
  tuples holding one [batch] array of words (bytes). Output: a single
  element, the path of the vocabulary file it wrote under its temporary
  directory (Transform copies it into the transform graph's assets): the
  reserved pieces, then what tensorflow-text's learner found in the word
  counts, one per line.
  """

  def __init__(self, vocabulary_size: int,
               reserved_pieces: List[str] = RESERVED_PIECES):
    super().__init__()
    self._vocabulary_size = vocabulary_size
    self._reserved_pieces = list(reserved_pieces)

  def expand(self, batches):
    return (batches
            | 'Words' >> beam.FlatMap(lambda batch: batch[0].tolist())
            | 'CountWords' >> beam.combiners.Count.PerElement()
            | 'AllCounts' >> beam.combiners.ToList()
            | 'Learn' >> beam.Map(self._learn))

  def _learn(self, word_counts) -> np.ndarray:
    counts = [(word.decode('utf-8'), count) for word, count in word_counts]
    # A small corpus has few words above the learner's default minimum
    # count of 10; 2 keeps a subword seen twice.
    pieces = wordpiece_tokenizer_learner_lib.learn(
        counts, vocab_size=self._vocabulary_size,
        reserved_tokens=self._reserved_pieces, lower_thresh=2)
    path = os.path.join(self.base_temp_dir, WORDPIECE_VOCABULARY_FILE)
    tf.io.gfile.makedirs(self.base_temp_dir)
    with tf.io.gfile.GFile(path, 'w') as f:
      f.write(''.join(f'{piece}\n' for piece in pieces))
    return np.array(path.encode('utf-8'), dtype=object)


def wordpiece(words: tf.RaggedTensor, vocabulary_size: int) -> tf.RaggedTensor:
  """[N, (words)] -> [N, (pieces)] WordPiece subwords, the vocabulary
  learned from `words` on Beam."""
  vocabulary_file = tft.experimental.ptransform_analyzer(
      inputs=[words.flat_values],
      ptransform=LearnWordpieceVocabulary(vocabulary_size),
      output_dtypes=[tf.string], output_shapes=[[]],
      output_asset_default_values=[f'{UNKNOWN_PIECE}\n'.encode()],
      name='wordpiece_vocabulary')[0]
  pieces = tf_text.WordpieceTokenizer(
      vocabulary_file, token_out_type=tf.string,
      unknown_token=UNKNOWN_PIECE).tokenize(words)
  return pieces.merge_dims(1, 2)


def _dense_strings(x) -> tf.Tensor:
  """A [N] or [N, 1] dense, or sparse, string feature as [N] strings."""
  if isinstance(x, tf.SparseTensor):
    x = tf.sparse.to_dense(
        tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]),
        default_value='')
  return tf.reshape(x, [-1])


def class_ids(names: tf.Tensor, classes: Sequence[str]) -> tf.Tensor:
  """[N] class names to [N] int64 ids in `classes` order; -1 for a name
  not among them, and for '', a record without that label: the losses
  skip -1 (`SparseFocalCrossentropy(ignore_class=-1)`)."""
  matches = tf.equal(tf.expand_dims(names, 1), tf.constant(classes))
  return tf.where(tf.reduce_any(matches, axis=1),
                  tf.argmax(tf.cast(matches, tf.int64), axis=1),
                  tf.constant(-1, tf.int64))


def preprocessing_fn(inputs: Dict[str, Any],
                     custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
  """Maps raw `text` (and `label` when present) to model inputs.

  `custom_config` is Transform's: the fields of
  `configs.PreprocessingConfig`. Returns `token_ids`: int64
  [N, max_tokens], vocabulary ids shifted by one (0 is padding; the
  `oov_buckets` ids after the vocabulary are for unseen tokens); and
  `label_id`: int64 [N] when the input has a label, and `topic_id`, int64
  [N] in `features.TOPICS` order, when it has a topic (-1 where a record
  lacks one; class_ids). With WordPiece the
  tokens are subwords; the id vocabulary is built over them the same way.
  With `pretrained_encoder` set, also the preset's encoder inputs, int64
  [N, encoder_sequence_length] each (pretrained_encoder.encoder_features).
  """
  text = _dense_strings(inputs[features.TEXT_KEY])
  tokens = tokenize(text)
  tokenization = custom_config['tokenization']
  if tokenization not in TOKENIZATIONS:
    raise ValueError(f'tokenization must be one of {TOKENIZATIONS}, got '
                     f'{tokenization!r}')
  if tokenization == 'wordpiece':
    tokens = wordpiece(tokens, custom_config['wordpiece_vocabulary_size'])
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
  if custom_config['pretrained_encoder']:
    outputs.update(pretrained_encoder.encoder_features(
        text, custom_config['pretrained_encoder'],
        custom_config['encoder_sequence_length']))
  if features.LABEL_KEY in inputs:
    outputs[features.LABEL_ID_KEY] = class_ids(
        _dense_strings(inputs[features.LABEL_KEY]), features.LABELS)
  if features.TOPIC_KEY in inputs:
    outputs[features.TOPIC_ID_KEY] = class_ids(
        _dense_strings(inputs[features.TOPIC_KEY]), features.TOPICS)
  return outputs
