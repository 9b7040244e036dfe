"""One worker of a multi-worker Trainer, outside TFX (`finsent
train-worker`): the Trainer's own `run_fn` (models.trainer) on the outputs
of a pipeline run's Transform and, optionally, its Tuner's best values,
with the strategy from TF_CONFIG.
"""

import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf
from tfx import v1 as tfx
from tfx.utils import io_utils

from finsent import configs
from finsent.models import trainer


def read_tuned_hyperparameters(artifact_dir: str) -> Dict[str, Any]:
  """The Tuner's best hyperparameters (a keras-tuner HyperParameters
  config), read as TFX's Trainer reads them into `fn_args.hyperparameters`.
  Raises ValueError saying what is wrong with the artifact."""
  try:
    path = io_utils.get_only_uri_in_dir(artifact_dir)
    config = json.loads(io_utils.read_string_file(path))
  except (OSError, RuntimeError, tf.errors.OpError) as e:
    raise ValueError(f'--hyperparameters {artifact_dir}: not a Tuner\'s '
                     f'best_hyperparameters artifact: {e}') from None
  except json.JSONDecodeError as e:
    raise ValueError(f'--hyperparameters {path}: not JSON: {e}') from None
  if not isinstance(config, dict) or not isinstance(config.get('values'),
                                                    dict):
    raise ValueError(f'--hyperparameters {path}: not a keras-tuner '
                     'HyperParameters config (no "values")')
  return config


def fn_args(config: configs.PipelineConfig, architecture: str,
            transform_graph: str, transformed_examples: str,
            serving_model_dir: str, model_run_dir: str,
            hyperparameters_dir: Optional[str] = None
            ) -> tfx.components.FnArgs:
  """What TFX's Trainer would hand `run_fn` for these artifacts. Values of
  a Tuner that the builder does not take are refused (ValueError) before
  training."""
  args = tfx.components.FnArgs(
      train_files=[os.path.join(transformed_examples, 'Split-train', '*')],
      eval_files=[os.path.join(transformed_examples, 'Split-eval', '*')],
      transform_graph_path=transform_graph,
      serving_model_dir=serving_model_dir,
      model_run_dir=model_run_dir,
      train_steps=config.training.train_steps,
      custom_config=config.trainer_custom_config(architecture))
  if hyperparameters_dir:
    args.hyperparameters = read_tuned_hyperparameters(hyperparameters_dir)
    trainer.tuned_settings(args.custom_config, args.hyperparameters)
  return args


def run(args: tfx.components.FnArgs) -> Dict[str, Any]:
  """Trains (the chief also exports); returns the training summary."""
  return trainer.run_fn(args)
