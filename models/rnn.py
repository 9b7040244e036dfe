"""Recurrent classifier: token ids -> masked embedding -> bidirectional RNN -> classes."""

import keras

from finsent.configs import features
from finsent.models.heads import classification_heads
from finsent.models.trim_padding import TrimPadding

RNN_CELLS = {'lstm': keras.layers.LSTM, 'gru': keras.layers.GRU}


def build_rnn_classifier(vocabulary_size: int,
                         sequence_length: int,
                         num_classes: int = len(features.LABELS),
                         num_topics: int = 0,
                         embedding_dim: int = 64,
                         rnn_units: int = 64,
                         cell: str = 'lstm',
                         dropout: float = 0.3,
                         input_key: str = features.TOKEN_IDS_KEY,
                         trim_padding: bool = False) -> keras.Model:
  """Builds a bidirectional LSTM/GRU text classifier.

  Args:
    vocabulary_size: number of token ids, padding id 0 included.
    sequence_length: padded length of `token_ids`.
    num_classes: size of the softmax output.
    num_topics: with 2 or more, a topic head of that many classes beside
      the sentiment head (models.heads); 0, none.
    embedding_dim: width of the token embedding.
    rnn_units: units of each direction of the recurrent layer.
    cell: `lstm` or `gru`.
    dropout: dropout on the RNN's inputs and on the pooled state.
    input_key: name of the model's input.
    trim_padding: cut each batch to its longest text first (TrimPadding),
      so the recurrence runs no steps over padding alone; dynamic shapes,
      so not on a TPU.

  Returns:
    A Keras model mapping `{input_key: int64 [batch, sequence_length]}`
    (padding 0, at the end) to class probabilities float32 [batch,
    num_classes], or with topics a dict of those and topic probabilities
    [batch, num_topics] (models.heads.classification_heads). Padding is
    masked, so the recurrence reads only real
    tokens.
  """
  if cell not in RNN_CELLS:
    raise ValueError(f'cell must be one of {sorted(RNN_CELLS)}, got {cell!r}')
  token_ids = keras.Input(shape=(sequence_length,), dtype='int64',
                          name=input_key)
  x = token_ids
  if trim_padding:
    # The token ids are their own mask: 0 is padding.
    x = TrimPadding(mask_key=input_key, name='trim_padding')({input_key: x})[
        input_key]
  x = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True,
                             name='token_embedding')(x)
  x = keras.layers.Bidirectional(
      RNN_CELLS[cell](rnn_units, dropout=dropout), name=f'bi_{cell}')(x)
  x = keras.layers.Dropout(dropout)(x)
  probabilities = classification_heads(x, num_classes, num_topics)
  return keras.Model({input_key: token_ids}, probabilities,
                     name='rnn_classifier')
