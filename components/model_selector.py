"""ModelSelector: the RNN/Transformer tournament, decided on recorded evidence.

Takes each architecture's trained model, TFMA evaluation and blessing, and
outputs the winner as a new Model artifact (a copy of the winner), for the
production Evaluator and Pusher. The rule:

1. Only candidates their own Evaluator blessed compete (if none was, all
   do, and the production Evaluator, with the same thresholds, refuses
   the winner).
2. The highest macro-F1 on the eval split wins.
3. Candidates within `macro_f1_tie_margin` of the best tie; the lowest p50
   batch-1 latency of the exported `serving_default` among them wins.

Latency is measured here, on this machine, with the candidates' requests
interleaved so that both see the same load: `latency_requests` batch-1
calls per model with texts from the eval split, after a warm-up.

Both candidates' metrics, the winner and the reason are recorded as custom
properties of the output Model in ML Metadata (`<architecture>_<metric>`,
`selected_architecture`, `selection_reason`), so the choice can be audited
from the store alone.
"""

import glob
import os
import statistics
import time
from typing import Any, Dict, List

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the models use)
from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx.utils import path_utils

from finsent.models import evaluation
from finsent.configs import features
from finsent.configs.features import ARCHITECTURES

WARMUP_REQUESTS = 20
SELECTED_ARCHITECTURE = 'selected_architecture'
SELECTION_REASON = 'selection_reason'
P50_LATENCY_MS = 'p50_latency_ms'
BLESSED = 'blessed'


# What each candidate brings, by input kind.
CANDIDATE_INPUTS = {
    'model': standard_artifacts.Model,
    'evaluation': standard_artifacts.ModelEvaluation,
    'blessing': standard_artifacts.ModelBlessing,
}


def _input_key(architecture: str, kind: str) -> str:
  return f'{architecture}_{kind}'


class ModelSelectorSpec(types.ComponentSpec):
  """Inputs: each architecture's model, evaluation and blessing."""
  PARAMETERS = {
      'macro_f1_tie_margin': component_spec.ExecutionParameter(type=float),
      'latency_requests': component_spec.ExecutionParameter(type=int),
  }
  INPUTS = {
      'examples': component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      **{_input_key(architecture, kind):
         component_spec.ChannelParameter(type=artifact_type)
         for architecture in ARCHITECTURES
         for kind, artifact_type in CANDIDATE_INPUTS.items()},
  }
  OUTPUTS = {
      'model': component_spec.ChannelParameter(type=standard_artifacts.Model),
  }


def _eval_texts(examples: types.Artifact, count: int) -> List[str]:
  """The first `count` texts of the eval split."""
  files = sorted(glob.glob(os.path.join(
      artifact_utils.get_split_uri([examples], 'eval'), '*')))
  texts = []
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP').take(
      count):
    example = tf.train.Example.FromString(record.numpy())
    texts.append(example.features.feature[features.TEXT_KEY].bytes_list
                 .value[0].decode('utf-8'))
  return texts


def measure_p50_latency_ms(model_dirs: Dict[str, str], texts: List[str]
                           ) -> Dict[str, float]:
  """Median batch-1 `serving_default` latency per model, interleaved."""
  signatures = {name: tf.saved_model.load(path).signatures['serving_default']
                for name, path in model_dirs.items()}
  seconds = {name: [] for name in signatures}
  for i, text in enumerate(texts[:WARMUP_REQUESTS] + texts):
    request = tf.constant([text])
    for name, serve in signatures.items():
      started = time.perf_counter()
      serve(text=request)
      if i >= WARMUP_REQUESTS:
        seconds[name].append(time.perf_counter() - started)
  return {name: 1000 * statistics.median(s) for name, s in seconds.items()}


def select(candidates: Dict[str, Dict[str, float]], tie_margin: float
           ) -> (str, str):
  """The winning architecture and why, by the rule in the module docstring.

  `candidates` maps architecture to its `macro_f1`, `p50_latency_ms` and
  `blessed` (1 or 0).
  """
  competing = {a: m for a, m in candidates.items() if m[BLESSED]} or candidates
  best_f1 = max(m['macro_f1'] for m in competing.values())
  tied = {a: m for a, m in competing.items()
          if best_f1 - m['macro_f1'] <= tie_margin}
  winner = min(tied, key=lambda a: tied[a][P50_LATENCY_MS])
  others = sorted(set(candidates) - {winner})
  won = candidates[winner]
  vs = '; '.join(
      f'{a} macro-F1 {candidates[a]["macro_f1"]:.4f}, p50 '
      f'{candidates[a][P50_LATENCY_MS]:.2f} ms'
      + ('' if candidates[a][BLESSED] else ', not blessed') for a in others)
  if len(tied) > 1:
    why = (f'macro-F1 within the tie margin {tie_margin}, and faster '
           f'(p50 {won[P50_LATENCY_MS]:.2f} ms)')
  elif len(competing) < len(candidates):
    why = f'the only blessed candidate (macro-F1 {won["macro_f1"]:.4f})'
  else:
    why = f'highest macro-F1 ({won["macro_f1"]:.4f})'
  if not won[BLESSED]:
    why += ', though no candidate was blessed'
  return winner, f'{winner}: {why}; vs {vs}'


class Executor(base_executor.BaseExecutor):
  """Measures latency, applies the rule, copies the winner, records why."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)

    def artifact(architecture: str, kind: str) -> types.Artifact:
      return artifact_utils.get_single_instance(
          input_dict[_input_key(architecture, kind)])

    candidates, model_dirs = {}, {}
    for architecture in ARCHITECTURES:
      evaluation_uri = artifact(architecture, 'evaluation').uri
      metrics = evaluation.overall_metrics(evaluation_uri)
      if 'macro_f1' not in metrics:
        raise ValueError(f'the {architecture} evaluation has no macro-F1 '
                         f'({evaluation_uri})')
      metrics[BLESSED] = artifact(
          architecture, 'blessing').get_int_custom_property(BLESSED)
      candidates[architecture] = metrics
      model_dirs[architecture] = path_utils.serving_model_path(
          artifact(architecture, 'model').uri)
    texts = _eval_texts(
        artifact_utils.get_single_instance(input_dict['examples']),
        exec_properties['latency_requests'])
    for architecture, p50 in measure_p50_latency_ms(model_dirs, texts).items():
      candidates[architecture][P50_LATENCY_MS] = p50

    winner, reason = select(candidates,
                            exec_properties['macro_f1_tie_margin'])
    logging.info('ModelSelector: %s', reason)
    output = artifact_utils.get_single_instance(output_dict['model'])
    io_utils.copy_dir(artifact(winner, 'model').uri, output.uri)
    output.set_string_custom_property(SELECTED_ARCHITECTURE, winner)
    output.set_string_custom_property(SELECTION_REASON, reason)
    for architecture, metrics in candidates.items():
      for name, value in metrics.items():
        output.set_float_custom_property(f'{architecture}_{name}', value)


class ModelSelector(base_component.BaseComponent):
  """Picks the production model among the architectures' (module doc).

  Output `model`: a copy of the winner, with the decision in its custom
  properties.
  """
  SPEC_CLASS = ModelSelectorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, examples: types.BaseChannel,
               candidates: Dict[str, Dict[str, types.BaseChannel]],
               macro_f1_tie_margin: float, latency_requests: int):
    """Args:

      examples: ExampleGen's examples; the eval split's texts are the
        latency requests.
      candidates: for each of ARCHITECTURES, its {'model', 'evaluation',
        'blessing'} channels (Trainer's model, Evaluator's evaluation and
        blessing).
      macro_f1_tie_margin, latency_requests: see SelectionConfig.
    """
    if sorted(candidates) != sorted(ARCHITECTURES):
      raise ValueError(f'candidates must be {ARCHITECTURES}, got '
                       f'{sorted(candidates)}')
    inputs = {_input_key(a, kind): channel
              for a, channels in candidates.items()
              for kind, channel in channels.items()}
    super().__init__(spec=ModelSelectorSpec(
        examples=examples, macro_f1_tie_margin=macro_f1_tie_margin,
        latency_requests=latency_requests,
        model=types.Channel(type=standard_artifacts.Model), **inputs))
