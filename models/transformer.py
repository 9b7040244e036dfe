"""Transformer classifier built from keras-hub layers."""

import keras
import keras_hub

from finsent.configs import features
from finsent.models.heads import classification_heads
from finsent.models.trim_padding import TrimPadding


def build_transformer_classifier(vocabulary_size: int,
                                 sequence_length: int,
                                 num_classes: int = len(features.LABELS),
                                 num_topics: int = 0,
                                 embedding_dim: int = 64,
                                 num_layers: int = 2,
                                 num_heads: int = 4,
                                 intermediate_dim: int = 128,
                                 dropout: float = 0.1,
                                 input_key: str = features.TOKEN_IDS_KEY,
                                 trim_padding: bool = False) -> keras.Model:
  """Builds a Transformer-encoder text classifier.

  Token and position embeddings (`keras_hub.layers.TokenAndPositionEmbedding`)
  (layer-normalised, with dropout) feed `num_layers`
  `keras_hub.layers.TransformerEncoder` blocks; the
  encoded tokens are mean-pooled over the real (unmasked) positions.

  Args:
    vocabulary_size: number of token ids, padding id 0 included.
    sequence_length: padded length of `token_ids` (the position table size).
    num_classes: size of the softmax output.
    num_topics: with 2 or more, a topic head of that many classes beside
      the sentiment head (models.heads); 0, none.
    embedding_dim: model width.
    num_layers: number of encoder blocks.
    num_heads: attention heads per block; must divide `embedding_dim`.
    intermediate_dim: width of each block's feed-forward layer.
    dropout: dropout on the embeddings, in the blocks and on the pooled
      vector.
    input_key: name of the model's input.
    trim_padding: cut each batch to its longest text first (TrimPadding):
      the same probabilities for the cost of the tokens the batch holds;
      dynamic shapes, so not on a TPU.

  Returns:
    A Keras model mapping `{input_key: int64 [batch, sequence_length]}`
    (padding 0, at the end) to class probabilities float32 [batch,
    num_classes]; with topics a dict of those and topic probabilities
    [batch, num_topics] (models.heads.classification_heads).
  """
  if embedding_dim % num_heads:
    raise ValueError(f'num_heads ({num_heads}) must divide embedding_dim '
                     f'({embedding_dim})')
  token_ids = keras.Input(shape=(sequence_length,), dtype='int64',
                          name=input_key)
  x = token_ids
  if trim_padding:
    # The token ids are their own mask: 0 is padding.
    x = TrimPadding(mask_key=input_key, name='trim_padding')({input_key: x})[
        input_key]
  x = keras_hub.layers.TokenAndPositionEmbedding(
      vocabulary_size=vocabulary_size, sequence_length=sequence_length,
      embedding_dim=embedding_dim, mask_zero=True,
      name='token_and_position_embedding')(x)
  # As in BERT (and keras-hub's BertBackbone): normalise and drop out the
  # summed embeddings before the first block.
  x = keras.layers.LayerNormalization(epsilon=1e-12,
                                      name='embeddings_layer_norm')(x)
  x = keras.layers.Dropout(dropout, name='embeddings_dropout')(x)
  for i in range(num_layers):
    x = keras_hub.layers.TransformerEncoder(
        intermediate_dim=intermediate_dim, num_heads=num_heads,
        dropout=dropout, name=f'transformer_encoder_{i}')(x)
  x = keras.layers.GlobalAveragePooling1D(name='mean_pool')(x)
  x = keras.layers.Dropout(dropout)(x)
  probabilities = classification_heads(x, num_classes, num_topics)
  return keras.Model({input_key: token_ids}, probabilities,
                     name='transformer_classifier')
