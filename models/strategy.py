"""The one place a `tf.distribute` strategy is chosen."""

from absl import logging
import tensorflow as tf

STRATEGIES = ('auto', 'default', 'mirrored')


def get_distribution_strategy(name: str = 'auto') -> tf.distribute.Strategy:
  """Returns the strategy to build and train models under.

  Args:
    name: `default` (one device), `mirrored` (MirroredStrategy over all
      local GPUs, or the CPU when there are none), or `auto`: mirrored when
      more than one GPU is visible, default otherwise.
  """
  if name not in STRATEGIES:
    raise ValueError(f'strategy must be one of {", ".join(STRATEGIES)}, got '
                     f'{name!r}')
  if name == 'auto':
    name = 'mirrored' if len(tf.config.list_logical_devices('GPU')) > 1 else (
        'default')
  strategy = (tf.distribute.MirroredStrategy() if name == 'mirrored' else
              tf.distribute.get_strategy())
  logging.info('Distribution strategy: %s with %d replica(s)',
               type(strategy).__name__, strategy.num_replicas_in_sync)
  return strategy
