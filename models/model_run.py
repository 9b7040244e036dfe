"""What a Trainer writes into its ModelRun artifact (TensorBoard's logdir)."""

import json
import os
from typing import Any, Dict

import tensorflow as tf

# Keras' TensorBoard callback writes the training scalars here, and
# models.profiling the profile beside them, so TensorBoard shows both as
# the run `train`.
TRAIN_LOG_SUBDIR = 'train'
TRAINING_SUMMARY_FILE = 'training_summary.json'


def write_training_summary(model_run_dir: str, summary: Dict[str, Any]) -> None:
  with tf.io.gfile.GFile(
      os.path.join(model_run_dir, TRAINING_SUMMARY_FILE), 'w') as f:
    json.dump(summary, f)


def read_training_summary(model_run_dir: str) -> Dict[str, Any]:
  """The Trainer's summary of the run, or {} when it wrote none."""
  path = os.path.join(model_run_dir, TRAINING_SUMMARY_FILE)
  if not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)
