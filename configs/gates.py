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
  max_drop_from_baseline: float = knob(
      0.02, 'the production candidate may be at most this much below the '
      'latest blessed production model, in accuracy and in macro-F1, on the '
      'same eval split')


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
  """ModelSelector: how the production model is chosen (its module)."""
  macro_f1_tie_margin: float = knob(
      0.005, 'macro-F1 differences up to this count as a tie, settled by '
      'latency')
  latency_requests: int = knob(
      200, 'batch-1 requests per model for the p50 latency (after warm-up)')
