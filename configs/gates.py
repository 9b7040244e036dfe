"""Knobs of the gates: the data gate's drift limits, the Evaluators'
blessing thresholds and the ModelSelector's rule (docs/gates.md)."""

import dataclasses

from finsent.configs.knobs import knob


@dataclasses.dataclass(frozen=True)
class BlessingThresholds:
  """Evaluator: a model below either value on the eval split is not blessed.

  Set well above chance (1/3) and above what a constant majority-class model
  reaches in macro-F1 (~0.2-0.3), so a broken model is never pushed.
  """
  min_accuracy: float = knob(0.55, 'lowest accuracy blessed')
  min_macro_f1: float = knob(0.45, 'lowest macro-F1 blessed')
  # A model with a topic head is blessed only if its topic output passes
  # too. Chance is 1/20; the most common topic is about 14 % of the data.
  min_topic_accuracy: float = knob(0.5, 'lowest topic accuracy blessed (a '
                                   'model with a topic head)')
  min_topic_macro_f1: float = knob(0.4, 'lowest topic macro-F1 blessed (a '
                                   'model with a topic head)')
  max_drop_from_baseline: float = knob(
      0.02, 'the production candidate may be at most this much below the '
      'latest blessed production model, in accuracy and in macro-F1 (of '
      'each head), on the same eval split')


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
  """DataGate: largest L-infinity distance allowed between this run's data
  and the last data that passed the gate, per split (TFDV drift check).

  L-infinity is the largest change of any one value's share: 0.10 lets the
  share of negative headlines move from 30% to 40%, not further.
  """
  label: float = knob(0.10, 'largest change of a label\'s share')
  length_bucket: float = knob(0.10, 'largest change of a length bucket\'s '
                              'share')


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
  """ModelSelector: how the production model is chosen among a run's
  candidates, weighing quality (macro-F1 on the eval split) against cost
  (speed measured by the selector) (components/model_selector.py)."""
  # The rules and the speeds they may compare (not fields: no annotation).
  RULES = ('fastest_within_margin', 'best_macro_f1')
  SPEEDS = ('headlines_per_second', 'p50_latency_ms')
  rule: str = knob(
      'fastest_within_margin', "fastest_within_margin: the fastest (by "
      "`speed`) of the candidates within `macro_f1_margin` of the best "
      "macro-F1; best_macro_f1: the best macro-F1, exact ties settled by "
      "`speed`", choices=RULES)
  macro_f1_margin: float = knob(
      0.01, 'fastest_within_margin: how far below the best macro-F1 a '
      'candidate may be and still win by speed')
  speed: str = knob(
      'headlines_per_second', 'what "fastest" means: batched throughput '
      '(headlines_per_second, as the monitoring job scores) or batch-1 '
      'p50 latency (p50_latency_ms, as one request at a time is served)',
      choices=SPEEDS)
  latency_requests: int = knob(
      200, 'batch-1 requests per model for the p50 latency (after warm-up)')
  throughput_batch_size: int = knob(
      256, 'eval texts per batch for the throughput (headlines/s), the '
      'median of a few batches after a warm-up one')
