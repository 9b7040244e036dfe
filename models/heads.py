"""The softmax heads a classifier ends in: sentiment, and topic beside it."""

from typing import Dict, Union

import keras

from finsent.configs import features

Probabilities = Union[keras.KerasTensor, Dict[str, keras.KerasTensor]]


def classification_heads(pooled: keras.KerasTensor, num_classes: int,
                         num_topics: int = 0,
                         sentiment_layer: str = 'probabilities'
                         ) -> Probabilities:
  """The sentiment head over `pooled`, and with `num_topics` a topic head
  beside it, both reading the same pooled vector.

  Args:
    pooled: the text's vector, float [batch, width].
    num_classes: sentiment classes.
    num_topics: topic classes; 0 for a sentiment-only model.
    sentiment_layer: the sentiment head's layer name.

  Returns:
    Sentiment probabilities float32 [batch, num_classes]; with topics a
    dict: `features.SENTIMENT_HEAD` those, `features.TOPIC_HEAD` topic
    probabilities float32 [batch, num_topics]. Keras names the model's
    outputs by the dict's keys, which the losses and metrics are keyed by.
  """
  if num_topics < 0 or num_topics == 1:
    raise ValueError(f'num_topics must be 0 (no topic head) or at least 2, '
                     f'got {num_topics}')
  sentiment = keras.layers.Dense(num_classes, activation='softmax',
                                 name=sentiment_layer)(pooled)
  if not num_topics:
    return sentiment
  topic = keras.layers.Dense(num_topics, activation='softmax',
                             name='topic_probabilities')(pooled)
  return {features.SENTIMENT_HEAD: sentiment, features.TOPIC_HEAD: topic}
