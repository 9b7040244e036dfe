"""How finsent's models are evaluated: the TFMA EvalConfig and its results.

Every Evaluator in the pipeline uses `create_eval_config`, so the RNN, the
Transformer and the production candidate are measured the same way on the
same eval split; `overall_metrics` reads an evaluation back for the model
selector and the end-of-run summary.
"""

from typing import Dict, List, Optional

import tensorflow_model_analysis as tfma

from finsent.models import export
from finsent.configs import features

ACCURACY = 'sparse_categorical_accuracy'
MACRO_F1 = 'macro_f1'
CLASS_RECALL = 'class_recall'
BRIER = 'brier_score'
ECE = 'expected_calibration_error'
EXAMPLE_COUNT = 'example_count'
# overall_metrics' keys of a topic head's figures: `topic_macro_f1`.
TOPIC_PREFIX = 'topic_'
CANDIDATE = 'candidate'
BASELINE = 'baseline'


def _overall_threshold(lower_bound: Optional[float],
                       max_drop: Optional[float]) -> list:
  """A threshold checked on the overall slice only (not per class or slice);
  none when `lower_bound` is None.

  `max_drop`: how far below the baseline model's value the candidate may
  fall; None when there is no baseline to compare with.
  """
  if lower_bound is None:
    return []
  threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(
          lower_bound={'value': lower_bound}))
  if max_drop is not None:
    threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER,
        absolute={'value': -max_drop}))
  return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                       threshold=threshold)]


def _model_spec(num_topics: int, **kwargs) -> tfma.ModelSpec:
  """Raw examples in through the export's examples signature, Transform's
  class ids as labels; a model with a topic head has two outputs, each
  with its own label and probabilities."""
  if num_topics:
    # TFMA names an output by its key in the signature's outputs.
    outputs = dict(label_keys={
        features.PROBABILITIES_OUTPUT: features.LABEL_ID_KEY,
        features.TOPIC_PROBABILITIES_OUTPUT: features.TOPIC_ID_KEY})
  else:
    outputs = dict(label_key=features.LABEL_ID_KEY,
                   prediction_key=features.PROBABILITIES_OUTPUT)
  return tfma.ModelSpec(
      signature_name=export.EXAMPLES_SIGNATURE,
      preprocessing_function_names=[export.TRANSFORM_SIGNATURE],
      **outputs, **kwargs)


def _custom_metric(class_name: str, **kwargs) -> tfma.MetricConfig:
  return tfma.MetricConfig(class_name=class_name,
                           module='finsent.models.tfma_metrics', **kwargs)


def _metrics(min_accuracy: Optional[float], min_macro_f1: Optional[float],
             max_drop: Optional[float]) -> List[tfma.MetricConfig]:
  """One output's metrics, the two gated ones with their thresholds."""
  return [
      # Each output on its labelled examples only (tfma_metrics).
      _custom_metric('LabelledExampleCount'),
      # Argmax-based (TFMA's own F1/recall threshold each class's
      # probability at 0.5; Keras's accuracy costs seconds of autograph
      # per evaluation); see models.tfma_metrics.
      _custom_metric('ArgmaxAccuracy', per_slice_thresholds=(
          _overall_threshold(min_accuracy, max_drop))),
      _custom_metric('MacroF1Score', per_slice_thresholds=(
          _overall_threshold(min_macro_f1, max_drop))),
      _custom_metric('PerClassRecall'),
      _custom_metric('PerClassPrecision'),
      _custom_metric('PerClassF1'),
      _custom_metric('MultiClassBrierScore'),
      _custom_metric('ExpectedCalibrationError'),
      # TFMA's plot keeps examples without a label, as actual class -1.
      tfma.MetricConfig(class_name='MultiClassConfusionMatrixPlot'),
  ]


def create_eval_config(min_accuracy: Optional[float],
                       min_macro_f1: Optional[float],
                       max_drop: Optional[float] = None,
                       num_topics: int = 0,
                       min_topic_accuracy: Optional[float] = None,
                       min_topic_macro_f1: Optional[float] = None
                       ) -> tfma.EvalConfig:
  """Accuracy, macro-F1, per-class metrics, calibration; sliced.

  A model is blessed when its overall accuracy and macro-F1 reach the
  minimums and, with `max_drop` set, when neither is more than `max_drop`
  below the baseline model's (the latest blessed one, which the Evaluator
  gets as `baseline_model`). Slices: overall, by source, by length bucket.
  With `num_topics`, for a model with a topic head: the same metrics for
  each output (`probabilities`, `topic_probabilities`), each on the
  examples labelled for it, and blessed only if the topic output reaches its own minimums (and
  `max_drop`) too. With every minimum None (and no `max_drop`) nothing is
  checked: TFMA then blesses nothing, for an Evaluator that only measures.
  """
  minimums = [min_accuracy, min_macro_f1]
  if num_topics:
    minimums += [min_topic_accuracy, min_topic_macro_f1]
  if max_drop is not None and None in minimums:
    raise ValueError('max_drop compares with a baseline: give every minimum')
  compare = max_drop is not None
  model_specs = ([_model_spec(num_topics, name=CANDIDATE),
                  _model_spec(num_topics, name=BASELINE, is_baseline=True)]
                 if compare else [_model_spec(num_topics)])
  if num_topics:
    metrics_specs = [
        tfma.MetricsSpec(
            output_names=[features.PROBABILITIES_OUTPUT],
            metrics=_metrics(min_accuracy, min_macro_f1, max_drop)),
        tfma.MetricsSpec(
            output_names=[features.TOPIC_PROBABILITIES_OUTPUT],
            metrics=_metrics(min_topic_accuracy, min_topic_macro_f1,
                             max_drop))]
  else:
    metrics_specs = [tfma.MetricsSpec(
        metrics=_metrics(min_accuracy, min_macro_f1, max_drop))]
  return tfma.EvalConfig(
      model_specs=model_specs,
      slicing_specs=[
          tfma.SlicingSpec(),
          tfma.SlicingSpec(feature_keys=[features.SOURCE_KEY]),
          tfma.SlicingSpec(feature_keys=[features.LENGTH_BUCKET_KEY]),
      ],
      metrics_specs=metrics_specs)


def overall_metrics(evaluation_uri: str) -> Dict[str, float]:
  """The overall slice's metrics of the evaluated (not baseline) model.

  Keys: `accuracy`, `macro_f1`, `brier_score`, `expected_calibration_error`,
  `example_count` (the examples with a sentiment label) and
  `recall_<label>` for each label; for a model with a topic head also
  `topic_accuracy`, `topic_macro_f1`, `topic_brier_score`,
  `topic_expected_calibration_error` and `topic_example_count`. A key is
  absent when TFMA did not compute it.
  """
  names = {ACCURACY: 'accuracy', MACRO_F1: MACRO_F1, BRIER: BRIER, ECE: ECE,
           EXAMPLE_COUNT: EXAMPLE_COUNT}
  prefixes = {'': '', features.PROBABILITIES_OUTPUT: '',
              features.TOPIC_PROBABILITIES_OUTPUT: TOPIC_PREFIX}
  metrics = {}
  for metrics_for_slice in tfma.load_metrics(evaluation_uri):
    if metrics_for_slice.slice_key.single_slice_keys:
      continue
    for kv in metrics_for_slice.metric_keys_and_values:
      key = kv.key
      if (key.model_name not in ('', CANDIDATE) or key.is_diff or
          key.output_name not in prefixes):
        continue
      value = kv.value.double_value.value
      prefix = prefixes[key.output_name]
      if key.name == CLASS_RECALL and not prefix:
        metrics[f'recall_{features.LABELS[key.sub_key.class_id.value]}'] = (
            value)
      elif key.name in names and not key.HasField('sub_key'):
        metrics[prefix + names[key.name]] = value
  return metrics
