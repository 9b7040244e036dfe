"""The one place a `tf.distribute` strategy is chosen, and what follows from
it: the global batch, the learning rate, and which worker writes outputs.

  auto                   TPU when a TPU address is configured; multi-worker
                         when TF_CONFIG names a cluster; mirrored when more
                         than one GPU is visible or cpu_replicas > 1;
                         default otherwise.
  default                one device.
  mirrored               MirroredStrategy over the local GPUs, or over
                         `cpu_replicas` logical CPU devices when there are
                         none.
  multi_worker_mirrored  MultiWorkerMirroredStrategy; the cluster and this
                         task come from TF_CONFIG.
  tpu                    TPUStrategy on the configured TPU.
"""

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple
import urllib.parse

from absl import logging
import tensorflow as tf

from finsent.configs.training import LEARNING_RATE_SCALINGS
from finsent.configs.training import STRATEGIES

# A grpc:// TPU address that does not answer within this many seconds is an
# error; TF's own connect would wait for it for ever.
TPU_CONNECT_TIMEOUT_SECONDS = 10


class StrategyError(ValueError):
  """The configured strategy cannot run in this process; says why."""


def cluster_from_tf_config(environ: Mapping[str, str] = os.environ
                           ) -> Optional[Dict[str, Any]]:
  """TF_CONFIG parsed, or None when it is unset or names no cluster."""
  raw = environ.get('TF_CONFIG', '').strip()
  if not raw:
    return None
  try:
    tf_config = json.loads(raw)
  except json.JSONDecodeError as e:
    raise StrategyError(f'TF_CONFIG is not JSON ({e}): {raw[:200]!r}') from None
  if not isinstance(tf_config, dict):
    raise StrategyError(f'TF_CONFIG must be a JSON object, got {raw[:200]!r}')
  cluster = tf_config.get('cluster')
  if not cluster:
    return None
  task = tf_config.get('task') or {}
  if task.get('type') not in cluster or not isinstance(
      task.get('index'), int) or not 0 <= task['index'] < len(
          cluster[task['type']]):
    raise StrategyError(
        f'TF_CONFIG task {task} is not a task of its cluster '
        f'{sorted(cluster)}: set task.type to one of them and task.index to '
        'this process\'s position in that list')
  return tf_config


def choose_strategy(name: str, tpu: Optional[str], cpu_replicas: int,
                    gpus: int, tf_config: Optional[Dict[str, Any]]) -> str:
  """The strategy `name` resolves to, from the config and the environment."""
  if name not in STRATEGIES:
    raise StrategyError(f'strategy must be one of {", ".join(STRATEGIES)}, '
                        f'got {name!r}')
  if cpu_replicas < 1:
    raise StrategyError(f'cpu_replicas must be at least 1, got {cpu_replicas}')
  if name == 'auto':
    if tpu:
      return 'tpu'
    if tf_config:
      return 'multi_worker_mirrored'
    return 'mirrored' if gpus > 1 or cpu_replicas > 1 else 'default'
  if name == 'tpu' and not tpu:
    raise StrategyError("strategy 'tpu' needs the TPU's address (--tpu: a "
                        "Cloud TPU name, grpc://host:port, or 'local')")
  if name == 'multi_worker_mirrored' and not tf_config:
    raise StrategyError(
        "strategy 'multi_worker_mirrored' needs TF_CONFIG naming the cluster "
        'and this task, e.g. {"cluster": {"worker": ["host1:port", '
        '"host2:port"]}, "task": {"type": "worker", "index": 0}}')
  return name


def configure_cpu_replicas(cpu_replicas: int) -> None:
  """Splits the CPU into `cpu_replicas` logical devices for MirroredStrategy.

  TensorFlow fixes its devices when its runtime starts, so this must run
  before the first TF op of the process (`finsent run` calls it first).
  """
  if cpu_replicas <= 1:
    return
  # Listing logical devices would start the runtime: try the split first.
  try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices('CPU')[0],
        [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
  except RuntimeError:
    if len(tf.config.list_logical_devices('CPU')) == cpu_replicas:
      return  # Split already, by an earlier call.
    raise StrategyError(
        f'cpu_replicas={cpu_replicas} needs {cpu_replicas} logical CPU '
        'devices, which must be configured before TensorFlow starts; this '
        f'process already runs with {len(tf.config.list_logical_devices("CPU"))}'
        ' (call models.strategy.configure_cpu_replicas at start-up)') from None


class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
  """MultiWorkerMirroredStrategy whose `reduce` takes what Keras 3 gives it.

  Keras 3's `fit` reduces a whole (features, label) batch at once, and each
  metric's scalar with `axis=0`; the collective strategy reduces only one
  tensor, of rank >= 1 when an axis is given, so `fit` fails
  (keras-team/keras#20585). This reduces leaf by leaf, scalars over
  replicas only; everything else is MultiWorkerMirroredStrategy's.
  """

  def reduce(self, reduce_op, value, axis):
    def reduce_one(per_replica):
      rank = self.experimental_local_results(per_replica)[0].shape.rank
      return super(KerasMultiWorkerMirroredStrategy, self).reduce(
          reduce_op, per_replica, axis if rank else None)
    return tf.nest.map_structure(reduce_one, value)


def _check_tpu_reachable(tpu: str) -> None:
  """A grpc://host:port TPU must answer before TF's connect waits on it."""
  address = urllib.parse.urlparse(tpu)
  if address.scheme != 'grpc':
    return  # A Cloud TPU name or 'local': the resolver looks it up.
  try:
    socket.create_connection((address.hostname, address.port),
                             timeout=TPU_CONNECT_TIMEOUT_SECONDS).close()
  except (OSError, ValueError) as e:
    raise StrategyError(f'the TPU at {tpu} does not answer: {e}') from None


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
  _check_tpu_reachable(tpu)
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  if tpu != 'local':  # A TPU VM's own chips need no remote connection.
    tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def prepare_strategy(training: Mapping[str, Any]) -> str:
  """The name in STRATEGIES that `training` (configs.TrainingConfig
  as a dict) resolves to here; for a mirrored strategy without GPUs, splits
  the CPU into `cpu_replicas` logical devices first.

  Call it before any other TF op of the process: multi-worker collectives
  and logical CPU devices are fixed when TensorFlow's runtime starts.
  """
  cpu_replicas = training.get('cpu_replicas', 1)
  name = choose_strategy(
      training['strategy'], training.get('tpu'), cpu_replicas,
      len(tf.config.list_physical_devices('GPU')), cluster_from_tf_config())
  if name == 'mirrored' and not tf.config.list_physical_devices('GPU'):
    configure_cpu_replicas(cpu_replicas)
  return name


def get_distribution_strategy(training: Mapping[str, Any]
                              ) -> Tuple[str, tf.distribute.Strategy]:
  """(name in STRATEGIES, strategy) for `training`, as `prepare_strategy`
  resolves it; call it first in a worker, for the same reason."""
  name = prepare_strategy(training)
  tf_config = cluster_from_tf_config()
  if name == 'tpu':
    strategy = _tpu_strategy(training['tpu'])
  elif name == 'multi_worker_mirrored':
    strategy = KerasMultiWorkerMirroredStrategy()
  elif name == 'mirrored':
    devices = None
    if (not tf.config.list_physical_devices('GPU') and
        training.get('cpu_replicas', 1) > 1):
      devices = [d.name for d in tf.config.list_logical_devices('CPU')]
    strategy = tf.distribute.MirroredStrategy(devices)
  else:
    strategy = tf.distribute.get_strategy()
  logging.info('Distribution strategy: %s (%s) with %d replica(s)%s', name,
               type(strategy).__name__, strategy.num_replicas_in_sync,
               f', task {tf_config["task"]}' if tf_config else '')
  return name, strategy


def task_of(strategy: tf.distribute.Strategy) -> Tuple[Optional[str], int]:
  """(task type, index) of this process in a multi-worker cluster, else
  (None, 0)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return None, 0
  return resolver.task_type, resolver.task_id or 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the model and logs: the `chief` task, or
  worker 0 of a cluster without one (TF's convention)."""
  task_type, task_id = task_of(strategy)
  if task_type is None or task_type == 'chief':
    return True
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and 'chief' not in cluster


@contextlib.contextmanager
def worker_output_dirs(strategy: tf.distribute.Strategy,
                       *dirs: str) -> Iterator[Tuple[str, ...]]:
  """`dirs` on the chief; on other workers, temporary dirs removed on exit.

  Every worker must save (saving reads variables through collectives), but
  only the chief's files are the Trainer's output.
  """
  if is_chief(strategy):
    yield dirs
    return
  task_type, task_id = task_of(strategy)
  scratch = tempfile.mkdtemp(prefix=f'finsent-{task_type}-{task_id}-')
  try:
    yield tuple(os.path.join(scratch, str(i)) for i in range(len(dirs)))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def scaled_learning_rate(base: float, replicas: int, rule: str) -> float:
  """The learning rate for a global batch `replicas` times the per-replica
  batch, by `rule` (LEARNING_RATE_SCALINGS)."""
  if rule not in LEARNING_RATE_SCALINGS:
    raise StrategyError(f'learning_rate_scaling must be one of '
                        f'{", ".join(LEARNING_RATE_SCALINGS)}, got {rule!r}')
  factor = {'linear': replicas, 'sqrt': math.sqrt(replicas), 'none': 1}[rule]
  return base * factor


def require_static_shapes(element_spec: Any) -> None:
  """Raises unless every shape in `element_spec` is fully defined: XLA on a
  TPU compiles once per shape, so a varying dimension recompiles or fails."""
  for spec in tf.nest.flatten(element_spec):
    if not spec.shape.is_fully_defined():
      raise StrategyError(
          f'a TPU needs static shapes, but the training data has {spec} '
          '(pad to a fixed length in Transform and batch with '
          'drop_remainder=True)')
