"""ModelSelector: the tournament among a run's candidates, weighing quality
against cost on recorded evidence.

The candidates are those of `configs.CANDIDATES` the run trains
(`PipelineConfig.candidates`): each architecture on the labels, or the
fine-tuned Transformer and the students distilled from it. Each brings its
trained model, its TFMA evaluation on the eval split and its blessing; a
candidate whose artifacts did not resolve (a student whose Trainer sat
under a `Cond` on an unblessed teacher) is not weighed. The output is the
winner as a new Model artifact (a copy of it), for the production
Evaluator and Pusher.

The rule (`SelectionConfig`):

1. Only candidates their own Evaluator blessed compete (if none was, all
   do, and the production Evaluator, with the same thresholds, refuses
   the winner).
2. `fastest_within_margin` (the default): among the competing candidates
   within `macro_f1_margin` of the best macro-F1, the fastest by `speed`
   wins; `best_macro_f1`: the best macro-F1 wins, a tie (exactly equal)
   going to the fastest.
3. `speed` is `headlines_per_second` (batched throughput, higher is
   faster; the default, as the monitoring job scores in batches) or
   `p50_latency_ms` (batch-1, lower is faster).

Cost is measured here, on this machine, on the exported `serving_default`
with texts from the eval split, the candidates' calls interleaved so that
all see the same load:

* p50 latency: `latency_requests` batch-1 calls per model, after
  `WARMUP_REQUESTS`;
* throughput: headlines/s on a batch of `throughput_batch_size` texts, the
  median of `THROUGHPUT_REPEATS` calls per model after one warm-up call;
* parameters: the SavedModel's floating-point variables, counted from its
  checkpoint (`count_parameters`).

Every candidate's metrics and costs, the candidates weighed, those that
competed, the winner and the reason are custom properties of the output
Model in ML Metadata (see `Executor`), so the choice can be audited from
the store alone.
"""

import glob
import itertools
import os
import statistics
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
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
from finsent.configs.features import CANDIDATES
from finsent.configs.gates import SelectionConfig

WARMUP_REQUESTS = 20
# Timed batches per model for the throughput, after one warm-up batch: the
# teacher (a 22.7 M-parameter BERT) scores ~140 headlines/s on a CPU, so a
# batch of 256 takes ~2 s and more repeats would cost the run seconds.
THROUGHPUT_REPEATS = 3

# The rules and speeds of SelectionConfig.
FASTEST_WITHIN_MARGIN = 'fastest_within_margin'
BEST_MACRO_F1 = 'best_macro_f1'
HEADLINES_PER_SECOND = 'headlines_per_second'
P50_LATENCY_MS = 'p50_latency_ms'

# Custom properties of the output Model (pipeline/summary.py reads them).
SELECTED_ARCHITECTURE = 'selected_architecture'  # the winning candidate
SELECTION_REASON = 'selection_reason'
SELECTION_RULE = 'selection_rule'
CANDIDATES_PROPERTY = 'candidates'  # comma-joined, every candidate weighed
COMPETING_PROPERTY = 'competing'  # comma-joined, those the rule chose among
# Beside each TFMA metric (`macro_f1`, `accuracy`, ...), per candidate:
# `<candidate>_<name>`, all floats.
MACRO_F1 = 'macro_f1'
PARAMETERS = 'parameters'
BLESSED = 'blessed'

# What each candidate brings, by input kind.
CANDIDATE_INPUTS = {
    'model': standard_artifacts.Model,
    'evaluation': standard_artifacts.ModelEvaluation,
    'blessing': standard_artifacts.ModelBlessing,
}

# Whether a higher figure is faster, by speed.
_HIGHER_IS_FASTER = {HEADLINES_PER_SECOND: True, P50_LATENCY_MS: False}
# Floating-point noise in a macro-F1 difference (0.74 - 0.73 is
# 0.010000000000000009) does not push a candidate out of the margin.
_MARGIN_TOLERANCE = 1e-9


def _input_key(candidate: str, kind: str) -> str:
  return f'{candidate}_{kind}'


class ModelSelectorSpec(types.ComponentSpec):
  """Inputs: each candidate's model, evaluation and blessing, all optional:
  a run gives some candidates only, and a channel it gives may resolve to
  no artifact (a Trainer under a `Cond` that was false)."""
  PARAMETERS = {
      'rule': component_spec.ExecutionParameter(type=str),
      'macro_f1_margin': component_spec.ExecutionParameter(type=float),
      'speed': component_spec.ExecutionParameter(type=str),
      'latency_requests': component_spec.ExecutionParameter(type=int),
      'throughput_batch_size': component_spec.ExecutionParameter(type=int),
  }
  INPUTS = {
      'examples': component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
      **{_input_key(candidate, kind):
         component_spec.ChannelParameter(type=artifact_type, optional=True)
         for candidate in CANDIDATES
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


def _cycled(texts: List[str], count: int) -> List[str]:
  """`count` texts, `texts` repeated as often as needed."""
  return list(itertools.islice(itertools.cycle(texts), count))


def count_parameters(model_dir: str) -> int:
  """The parameters of the SavedModel at `model_dir`: the sizes of its
  floating-point variables, read from its checkpoint.

  Trainable or not (frozen weights cost memory and time all the same), so
  it equals Keras' `count_params()`, the Trainer's `parameters`; integer
  state (the dropout layers' seed generators) is not a parameter. The
  checkpoint holds each variable once, and reading its index loads no
  graph (a loaded SavedModel of a plain `tf.Module` has no `.variables`).
  """
  reader = tf.train.load_checkpoint(
      os.path.join(model_dir, 'variables', 'variables'))
  dtypes = reader.get_variable_to_dtype_map()
  return sum(int(np.prod(shape))
             for name, shape in reader.get_variable_to_shape_map().items()
             if dtypes[name].is_floating)


def measure_costs(model_dirs: Mapping[str, str], texts: List[str],
                  latency_requests: int, throughput_batch_size: int
                  ) -> Dict[str, Dict[str, float]]:
  """Per model: `p50_latency_ms` (batch 1), `headlines_per_second` (on
  batches of `throughput_batch_size`) of `serving_default`, and
  `parameters`; each round of calls goes to every model in turn."""
  if not texts:
    raise ValueError('the eval split has no texts to time the models on')
  # The loaded objects own the variables the signatures read: kept alive.
  loaded = {name: tf.saved_model.load(path)
            for name, path in model_dirs.items()}
  signatures = {name: model.signatures['serving_default']
                for name, model in loaded.items()}
  names = list(signatures)
  seconds = {name: [] for name in names}
  warmup = _cycled(texts, WARMUP_REQUESTS)
  for i, text in enumerate(warmup + _cycled(texts, latency_requests)):
    request = tf.constant([text])
    for name in names:
      started = time.perf_counter()
      signatures[name](text=request)
      if i >= len(warmup):
        seconds[name].append(time.perf_counter() - started)
  batch = tf.constant(_cycled(texts, throughput_batch_size))
  batch_seconds = {name: [] for name in names}
  for round_ in range(1 + THROUGHPUT_REPEATS):
    # Each model first in turn, so none always follows the heaviest.
    for name in names[round_ % len(names):] + names[:round_ % len(names)]:
      started = time.perf_counter()
      signatures[name](text=batch)
      if round_:
        batch_seconds[name].append(time.perf_counter() - started)
  return {name: {
      P50_LATENCY_MS: 1000 * statistics.median(seconds[name]),
      HEADLINES_PER_SECOND: (throughput_batch_size /
                             statistics.median(batch_seconds[name])),
      PARAMETERS: float(count_parameters(model_dirs[name])),
  } for name in names}


def _figures(metrics: Mapping[str, float]) -> str:
  return (f'macro-F1 {metrics[MACRO_F1]:.4f}, p50 '
          f'{metrics[P50_LATENCY_MS]:.2f} ms, '
          f'{metrics[HEADLINES_PER_SECOND]:,.0f} headlines/s, '
          f'{int(metrics[PARAMETERS]):,} parameters, '
          + ('blessed' if metrics[BLESSED] else 'not blessed'))


def _speed_label(speed: str) -> str:
  return 'headlines/s' if speed == HEADLINES_PER_SECOND else 'p50 latency'


def competing_candidates(candidates: Mapping[str, Mapping[str, float]]
                         ) -> List[str]:
  """The candidates the rule chooses among: the blessed, or all if none
  is."""
  return [c for c, m in candidates.items() if m[BLESSED]] or list(candidates)


def select(candidates: Mapping[str, Mapping[str, float]], rule: str,
           macro_f1_margin: float, speed: str) -> Tuple[str, str]:
  """The winning candidate and why, by the rule in the module docstring.

  `candidates` maps a candidate's name to its `macro_f1`, `p50_latency_ms`,
  `headlines_per_second`, `parameters` and `blessed` (1 or 0). Ties of
  speed go to the better macro-F1, then to the name.
  """
  _check_rule(rule, speed)
  if not candidates:
    raise ValueError('no candidate to select from')
  competing = competing_candidates(candidates)
  best_f1 = max(candidates[c][MACRO_F1] for c in competing)
  best = min((c for c in competing if candidates[c][MACRO_F1] == best_f1))
  if rule == FASTEST_WITHIN_MARGIN:
    eligible = [c for c in competing if best_f1 - candidates[c][MACRO_F1]
                <= macro_f1_margin + _MARGIN_TOLERANCE]
  else:
    eligible = [c for c in competing if candidates[c][MACRO_F1] == best_f1]
  sign = -1 if _HIGHER_IS_FASTER[speed] else 1
  winner = min(eligible, key=lambda c: (sign * candidates[c][speed],
                                        -candidates[c][MACRO_F1], c))
  won = candidates[winner]
  speed_figure = (f'{won[speed]:,.0f} headlines/s'
                  if speed == HEADLINES_PER_SECOND
                  else f'p50 {won[speed]:.2f} ms')
  if len(candidates) == 1:
    why = 'the only candidate'
  elif len(competing) == 1:
    why = 'the only blessed candidate'
  elif rule == FASTEST_WITHIN_MARGIN and len(eligible) > 1:
    why = (f'the fastest by {_speed_label(speed)} ({speed_figure}) of the '
           f'{len(eligible)} within {macro_f1_margin} macro-F1 of the best '
           f'({best} {best_f1:.4f})')
  elif rule == FASTEST_WITHIN_MARGIN:
    why = (f'highest macro-F1 ({best_f1:.4f}), no other within '
           f'{macro_f1_margin}')
  elif len(eligible) > 1:
    why = (f'highest macro-F1 ({best_f1:.4f}), tied exactly with '
           f'{", ".join(c for c in eligible if c != winner)}, and the '
           f'fastest by {_speed_label(speed)} ({speed_figure})')
  else:
    why = f'highest macro-F1 ({best_f1:.4f})'
  if len(competing) < len(candidates) and len(competing) > 1:
    why += ' among the blessed'
  if not won[BLESSED]:
    why += (', though not blessed' if len(candidates) == 1 else
            ', though no candidate was blessed')
  others = [c for c in CANDIDATES if c in candidates and c != winner] + sorted(
      c for c in candidates if c not in CANDIDATES and c != winner)
  reason = (f'{winner}: {why} (rule {rule}); {_figures(won)}')
  if others:
    reason += '; vs ' + '; '.join(f'{c} {_figures(candidates[c])}'
                                  for c in others)
  return winner, reason


def resolved_candidates(input_dict: Mapping[str, List[types.Artifact]]
                        ) -> Dict[str, Dict[str, types.Artifact]]:
  """Each candidate whose inputs resolved: {kind: artifact}.

  TFX leaves an optional input out of `input_dict` when the component was
  not given its channel, and gives an empty list when the channel
  resolved to no artifact (its producer did not run); a candidate with
  some of its inputs but not all is an error.
  """
  resolved = {}
  for candidate in CANDIDATES:
    artifacts = {kind: list(input_dict.get(_input_key(candidate, kind)) or [])
                 for kind in CANDIDATE_INPUTS}
    present = [kind for kind, found in artifacts.items() if found]
    if not present:
      continue
    missing = [kind for kind in CANDIDATE_INPUTS if kind not in present]
    if missing:
      raise ValueError(
          f'candidate {candidate} has its {", ".join(present)} but no '
          f'{", ".join(missing)}')
    for kind, found in artifacts.items():
      if len(found) != 1:
        raise ValueError(f'candidate {candidate} has {len(found)} {kind} '
                         'artifacts, expected one')
    resolved[candidate] = {kind: found[0]
                           for kind, found in artifacts.items()}
  if not resolved:
    raise ValueError('ModelSelector: no candidate resolved (no model, '
                     'evaluation and blessing of any of '
                     f'{", ".join(CANDIDATES)})')
  return resolved


class Executor(base_executor.BaseExecutor):
  """Measures cost, applies the rule, copies the winner, records why.

  The output Model's custom properties: `selected_architecture` (the
  winning candidate's name), `selection_reason`, `selection_rule`,
  `candidates` (every candidate weighed, comma-joined), `competing`
  (those the rule chose among) and, for each candidate weighed,
  `<candidate>_<name>` (a float) for each TFMA metric of its evaluation
  (`macro_f1`, `accuracy`, `recall_<label>`, ...), `p50_latency_ms`,
  `headlines_per_second`, `parameters` and `blessed` (1.0 or 0.0).
  """

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    resolved = resolved_candidates(input_dict)
    candidates, model_dirs = {}, {}
    for candidate, artifacts in resolved.items():
      evaluation_uri = artifacts['evaluation'].uri
      metrics = evaluation.overall_metrics(evaluation_uri)
      if MACRO_F1 not in metrics:
        raise ValueError(f'the {candidate} evaluation has no macro-F1 '
                         f'({evaluation_uri})')
      metrics[BLESSED] = artifacts['blessing'].get_int_custom_property(
          BLESSED)
      candidates[candidate] = metrics
      model_dirs[candidate] = path_utils.serving_model_path(
          artifacts['model'].uri)
    latency_requests = exec_properties['latency_requests']
    batch_size = exec_properties['throughput_batch_size']
    texts = _eval_texts(
        artifact_utils.get_single_instance(input_dict['examples']),
        max(latency_requests, batch_size))
    started = time.perf_counter()
    for candidate, costs in measure_costs(model_dirs, texts, latency_requests,
                                          batch_size).items():
      candidates[candidate].update(costs)
    logging.info('ModelSelector: measured %d candidates in %.1f s',
                 len(candidates), time.perf_counter() - started)

    rule = exec_properties['rule']
    winner, reason = select(candidates, rule,
                            exec_properties['macro_f1_margin'],
                            exec_properties['speed'])
    logging.info('ModelSelector: %s', reason)
    output = artifact_utils.get_single_instance(output_dict['model'])
    io_utils.copy_dir(resolved[winner]['model'].uri, output.uri)
    output.set_string_custom_property(SELECTED_ARCHITECTURE, winner)
    output.set_string_custom_property(SELECTION_REASON, reason)
    output.set_string_custom_property(
        SELECTION_RULE, f'{rule}, macro_f1_margin '
        f'{exec_properties["macro_f1_margin"]}, speed '
        f'{exec_properties["speed"]}')
    output.set_string_custom_property(CANDIDATES_PROPERTY,
                                      ','.join(candidates))
    output.set_string_custom_property(
        COMPETING_PROPERTY, ','.join(competing_candidates(candidates)))
    for candidate, metrics in candidates.items():
      for name, value in metrics.items():
        output.set_float_custom_property(f'{candidate}_{name}', value)


def _check_rule(rule: str, speed: str) -> None:
  if rule not in SelectionConfig.RULES:
    raise ValueError(f'rule must be one of {", ".join(SelectionConfig.RULES)}'
                     f', got {rule!r}')
  if speed not in SelectionConfig.SPEEDS:
    raise ValueError(f'speed must be one of '
                     f'{", ".join(SelectionConfig.SPEEDS)}, got {speed!r}')


def _check_settings(rule: str, macro_f1_margin: float, speed: str,
                    latency_requests: int, throughput_batch_size: int
                    ) -> None:
  _check_rule(rule, speed)
  if macro_f1_margin < 0:
    raise ValueError(f'macro_f1_margin must be at least 0, got '
                     f'{macro_f1_margin}')
  for name, value in (('latency_requests', latency_requests),
                      ('throughput_batch_size', throughput_batch_size)):
    if value < 1:
      raise ValueError(f'{name} must be at least 1, got {value}')


class ModelSelector(base_component.BaseComponent):
  """Picks the production model among a run's candidates (module doc).

  Output `model`: a copy of the winner, with the decision in its custom
  properties (Executor).
  """
  SPEC_CLASS = ModelSelectorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, examples: types.BaseChannel,
               candidates: Dict[str, Dict[str, types.BaseChannel]],
               rule: str = SelectionConfig.rule,
               macro_f1_margin: float = SelectionConfig.macro_f1_margin,
               speed: str = SelectionConfig.speed,
               latency_requests: int = SelectionConfig.latency_requests,
               throughput_batch_size: int = (
                   SelectionConfig.throughput_batch_size),
               ):
    """Args:

      examples: ExampleGen's examples; the eval split's texts time the
        models.
      candidates: candidate name (at least two of configs.CANDIDATES) ->
        its {'model', 'evaluation', 'blessing'} channels (Trainer's model,
        Evaluator's evaluation and blessing). A candidate whose channels
        resolve to no artifact in a run is not weighed in that run.
      rule, macro_f1_margin, speed, latency_requests,
        throughput_batch_size: see SelectionConfig.
    """
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown:
      raise ValueError(f'unknown candidates {", ".join(unknown)}; the '
                       f'candidates are {", ".join(CANDIDATES)}')
    if len(candidates) < 2:
      raise ValueError('ModelSelector needs at least 2 candidates, got '
                       f'{len(candidates)} ({", ".join(candidates)})')
    for candidate, channels in candidates.items():
      if sorted(channels) != sorted(CANDIDATE_INPUTS):
        raise ValueError(f'candidate {candidate} needs channels '
                         f'{", ".join(CANDIDATE_INPUTS)}, got '
                         f'{", ".join(sorted(channels)) or "none"}')
    _check_settings(rule, macro_f1_margin, speed, latency_requests,
                    throughput_batch_size)
    inputs = {_input_key(c, kind): channel
              for c, channels in candidates.items()
              for kind, channel in channels.items()}
    super().__init__(spec=ModelSelectorSpec(
        examples=examples, rule=rule, macro_f1_margin=macro_f1_margin,
        speed=speed, latency_requests=latency_requests,
        throughput_batch_size=throughput_batch_size,
        model=types.Channel(type=standard_artifacts.Model), **inputs))
