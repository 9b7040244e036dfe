"""Pusher executor that never exposes a half-written model version.

It also never pushes the same model twice in a row (`is_newest_version`).

TFX's own filesystem push copies straight into `<base>/<version>/` (with
`saved_model.pb` last), so a model server polling the base directory can
see the version directory while it is still being written, and two pushes
in the same second share a version. This executor copies into a hidden
staging directory beside it (TF Serving ignores names that are not
integers) and renames it into place, which is atomic on a POSIX
local filesystem; versions are UNIX seconds, bumped past the newest existing
version so they always increase.
"""

import hashlib
import os
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils


# PushedModel custom property: 1 when the model was not pushed because the
# newest version already is this very model (a rerun from TFX's cache).
ALREADY_PUSHED = 'already_pushed'


def _digest(directory: str) -> str:
  """SHA-256 over every file's relative path and bytes, in sorted order."""
  digest = hashlib.sha256()
  for root, _, names in sorted(fileio.walk(directory)):
    for name in sorted(names):
      path = os.path.join(root, name)
      digest.update(os.path.relpath(path, directory).encode())
      with fileio.open(path, 'rb') as f:
        digest.update(f.read())
  return digest.hexdigest()


def is_newest_version(model_path: str, base_directory: str) -> bool:
  """Whether the newest version under `base_directory` is `model_path`'s copy.

  A rerun that takes a Trainer from TFX's cache evaluates and blesses the
  same model again (against itself, its own latest blessed baseline); TFX's
  Pusher would then push a duplicate version.
  """
  if not fileio.exists(base_directory):
    return False
  versions = [int(n.rstrip('/')) for n in fileio.listdir(base_directory)
              if n.rstrip('/').isdigit()]
  return bool(versions) and _digest(model_path) == _digest(
      os.path.join(base_directory, str(max(versions))))


def next_version(base_directory: str, now: int) -> int:
  """`now`, or one past the newest integer version already in the base."""
  existing = [int(n.rstrip('/')) for n in fileio.listdir(base_directory)
              if n.rstrip('/').isdigit()]
  return max([now] + [v + 1 for v in existing])


def publish_model(model_path: str, base_directory: str) -> str:
  """Copies a SavedModel to a new version under `base_directory`, atomically."""
  fileio.makedirs(base_directory)
  version = str(next_version(base_directory, int(time.time())))
  staging = os.path.join(base_directory, f'.{version}.incomplete')
  try:
    io_utils.copy_dir(model_path, staging)
    fileio.rename(staging, os.path.join(base_directory, version))
  finally:
    if fileio.exists(staging):
      fileio.rmtree(staging)
  return version


class Executor(pusher_executor.Executor):
  """Pushes a blessed model to `<base_directory>/<version>/` atomically."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
        destination)
    if destination.WhichOneof('destination') != 'filesystem':
      raise ValueError('only a filesystem push destination is supported, got '
                       f'{destination.WhichOneof("destination")}')
    base_directory = destination.filesystem.base_directory
    model_path = self.GetModelPath(input_dict)
    if is_newest_version(model_path, base_directory):
      logging.info('Not pushed: the newest version in %s is this model.',
                   base_directory)
      model_push.set_int_custom_property(ALREADY_PUSHED, 1)
      self._MarkNotPushed(model_push)
      return
    version = publish_model(model_path, base_directory)
    serving_path = os.path.join(base_directory, version)
    logging.info('Model pushed to %s', serving_path)
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push, pushed_destination=serving_path,
                     pushed_version=version)


class AtomicPusher(tfx.components.Pusher):
  """Pusher (same arguments) whose filesystem push is atomic per version."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
