"""Custom TFMA metrics for finsent's classifiers (sentiment, topic).

TFMA 0.47 lacks two kinds of metric this classifier needs, so this module adds
them:

Calibration. Accuracy and F1 say how often the argmax is right, not whether
the probabilities can be trusted: a confident wrong "positive" on a sell-off
headline costs more than a hesitant one, and anything that acts on the
probabilities (a threshold, a position size) needs them calibrated. TFMA has no
multi-class expected calibration error or Brier score:

* `MultiClassBrierScore` ('brier_score'): mean over examples of
  sum_k (p_k - y_k)^2, with y the one-hot label.
* `ExpectedCalibrationError` ('expected_calibration_error'): top-label ECE,
  sum_b (n_b / N) * |accuracy_b - mean_confidence_b| over equal-width bins of
  the max probability.

Argmax classification. TFMA's `F1Score` with macro aggregation, and its
`Precision` / `Recall` / `F1Score` binarized per class, treat each class as a
one-vs-rest problem with a 0.5 threshold on that class's probability, not the
argmax: a 3-class softmax whose top probability is below 0.5 (common: 0.45 /
0.30 / 0.25) predicts no class at all there, so its F1 and recall come out too
low, down to 0, instead of the standard macro-F1 of the argmax prediction.
These metrics use the argmax (ties go to the lowest class id):

* `MacroF1Score` ('macro_f1'): unweighted mean over classes of
  F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c).
* `ArgmaxAccuracy` ('sparse_categorical_accuracy', the name of Keras's
  metric it replaces): the share of examples whose argmax is their label.
  Keras's, wrapped by TFMA, costs each evaluation about 5.6 s of autograph
  conversion on this machine, a third of an Evaluator on the sample's 225
  rows; this one is read off the same confusion matrix as the others.
* `LabelledExampleCount` ('example_count'): the examples with a label for
  the output, which all of these metrics are over (below).
* `PerClassRecall` ('class_recall'), `PerClassPrecision` ('class_precision'),
  `PerClassF1` ('class_f1'): one value per class, each under a MetricKey with
  `sub_key=SubKey(class_id=c)`.

The calibration metrics share one accumulation and the argmax metrics another
(an example-weighted confusion matrix), so asking for several reads the
examples once per group. Predictions are class probabilities [num_classes]
(the number of classes is their size); labels are a class id [1] (as the
pipeline's `label_id` and `topic_id`) or a one-hot [num_classes]. A
negative class id means the example has no label for that output (a record
may carry a sentiment, a topic or both; Transform writes -1 for the one it
lacks): every metric here leaves such an example out. Example weights apply when
the EvalConfig asks for weighted metrics. Use them in an EvalConfig as, e.g.,
`tfma.MetricConfig(class_name='MacroF1Score', module='finsent.models.tfma_metrics',
per_slice_thresholds=[...])`; a threshold on `MacroF1Score` applies to its
single key ('macro_f1', no sub_key). The per-class metrics are for reporting:
TFMA looks a MetricConfig threshold on them up without a sub_key, matches none
of their keys and reports the threshold as failed ('Metric not found').
"""

import functools
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.proto import config_pb2

from finsent.models import calibration

BRIER_SCORE_NAME = 'brier_score'
EXPECTED_CALIBRATION_ERROR_NAME = 'expected_calibration_error'
MACRO_F1_NAME = 'macro_f1'
ACCURACY_NAME = 'sparse_categorical_accuracy'
EXAMPLE_COUNT_NAME = 'example_count'
CLASS_RECALL_NAME = 'class_recall'
CLASS_PRECISION_NAME = 'class_precision'
CLASS_F1_NAME = 'class_f1'
DEFAULT_NUM_BINS = calibration.DEFAULT_NUM_BINS
_CALIBRATION_HISTOGRAM_NAME = '_calibration_histogram'
_ARGMAX_CONFUSION_MATRIX_NAME = '_argmax_confusion_matrix'


class MultiClassBrierScore(metric_types.Metric):
  """Multi-class Brier score: weighted mean of sum_k (p_k - y_k)^2.

  Per example, the prediction is p [num_classes] and y [num_classes] is the
  one-hot of the label (a class id [1], or already one-hot [num_classes]).
  The result is a float in [0, 2]: 0 for one-hot predictions that are all
  right, 2 for one-hot predictions that are all wrong; NaN without examples.
  """

  def __init__(self, name: str = BRIER_SCORE_NAME):
    """Initializes the multi-class Brier score.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(_brier_score), name=name)


metric_types.register_metric(MultiClassBrierScore)


class ExpectedCalibrationError(metric_types.Metric):
  """Top-label expected calibration error (ECE).

  Per example, the prediction is p [num_classes]; its confidence is max_k p_k
  and it is correct when argmax_k p_k equals the label (a class id [1], or the
  hot index of a one-hot [num_classes]). Examples fall into `num_bins`
  equal-width confidence bins [i / num_bins, (i + 1) / num_bins), the last one
  closed at 1. The result is the float
  sum_b (n_b / N) * |accuracy_b - mean_confidence_b| in [0, 1], with n_b and N
  (example-weighted) counts; NaN without examples.
  """

  def __init__(self,
               num_bins: int = DEFAULT_NUM_BINS,
               name: str = EXPECTED_CALIBRATION_ERROR_NAME):
    """Initializes the expected calibration error.

    Args:
      num_bins: Number of equal-width confidence bins over [0, 1].
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(_expected_calibration_error),
        num_bins=num_bins,
        name=name)


metric_types.register_metric(ExpectedCalibrationError)


class MacroF1Score(metric_types.Metric):
  """Macro-F1 of the argmax prediction.

  Per example, the prediction is p [num_classes] and the predicted class is
  argmax_k p_k (ties: the lowest class id), however small max_k p_k is. From
  the example-weighted confusion matrix, per class c,
  F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), and 0 when the denominator is 0 (c
  neither in the labels nor predicted). The result is the float
  (1 / num_classes) * sum_c F1_c in [0, 1], over all num_classes classes (a
  class absent from a slice and never predicted there counts as 0); NaN
  without examples (or with total weight 0).
  """

  def __init__(self, name: str = MACRO_F1_NAME):
    """Initializes the argmax macro-F1.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(_macro_f1), name=name)


metric_types.register_metric(MacroF1Score)


class ArgmaxAccuracy(metric_types.Metric):
  """Accuracy of the argmax prediction.

  The example-weighted share of examples whose argmax (ties: the lowest
  class id, as Keras's SparseCategoricalAccuracy) is their label: the
  float trace(M) / sum(M) in [0, 1] of the confusion matrix M; NaN without
  examples (or with total weight 0).
  """

  def __init__(self, name: str = ACCURACY_NAME):
    """Initializes the argmax accuracy.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(_accuracy), name=name)


metric_types.register_metric(ArgmaxAccuracy)


class LabelledExampleCount(metric_types.Metric):
  """The (example-weighted) number of examples with a label for the output.

  TFMA's `ExampleCount` counts every example of a slice; on data where a
  record may carry a sentiment label, a topic or both, each output is
  measured on its labelled examples only (a negative class id is no label),
  and this is their count: the total of the argmax confusion matrix. A
  float; 0 without labelled examples.
  """

  def __init__(self, name: str = EXAMPLE_COUNT_NAME):
    """Initializes the count.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(_example_count), name=name)


metric_types.register_metric(LabelledExampleCount)


class PerClassRecall(metric_types.Metric):
  """Recall of each class under the argmax prediction.

  One float per class c in [0, num_classes), under the MetricKey with
  `sub_key=SubKey(class_id=c)`: TP_c / (TP_c + FN_c), the example-weighted
  share of class-c examples whose argmax is c; NaN when c has no examples.
  No keys at all without examples (the number of classes is unknown).
  """

  def __init__(self, name: str = CLASS_RECALL_NAME):
    """Initializes the per-class argmax recall.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(
            _per_class_computations_fn(_class_recall)),
        name=name)


metric_types.register_metric(PerClassRecall)


class PerClassPrecision(metric_types.Metric):
  """Precision of each class under the argmax prediction.

  One float per class c in [0, num_classes), under the MetricKey with
  `sub_key=SubKey(class_id=c)`: TP_c / (TP_c + FP_c), the example-weighted
  share of examples with argmax c that are of class c; NaN when c is never
  predicted. No keys at all without examples.
  """

  def __init__(self, name: str = CLASS_PRECISION_NAME):
    """Initializes the per-class argmax precision.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(
            _per_class_computations_fn(_class_precision)),
        name=name)


metric_types.register_metric(PerClassPrecision)


class PerClassF1(metric_types.Metric):
  """F1 of each class under the argmax prediction.

  One float per class c in [0, num_classes), under the MetricKey with
  `sub_key=SubKey(class_id=c)`: F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), 0
  when the denominator is 0 (as in `MacroF1Score`, whose value is their
  mean). No keys at all without examples.
  """

  def __init__(self, name: str = CLASS_F1_NAME):
    """Initializes the per-class argmax F1.

    Args:
      name: Metric name.
    """
    super().__init__(
        metric_util.merge_per_key_computations(
            _per_class_computations_fn(_class_f1)),
        name=name)


metric_types.register_metric(PerClassF1)


def _brier_score_value(
    key: metric_types.MetricKey, histogram: '_CalibrationHistogram'
) -> Dict[metric_types.MetricKey, float]:
  """{key: Brier score} from the histogram; NaN without examples."""
  if histogram.total_weight == 0:
    return {key: float('nan')}
  return {key: histogram.weighted_squared_error / histogram.total_weight}


def _expected_calibration_error(
    name: str = EXPECTED_CALIBRATION_ERROR_NAME,
    num_bins: int = DEFAULT_NUM_BINS,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = '',
    output_name: str = '',
    example_weighted: bool = False) -> metric_types.MetricComputations:
  """Returns metric computations for the top-label ECE."""
  return _derived_metric(
      functools.partial(_calibration_histogram, num_bins),
      _expected_calibration_error_value)(
          name, eval_config, model_name, output_name, example_weighted)


def _expected_calibration_error_value(
    key: metric_types.MetricKey, histogram: '_CalibrationHistogram'
) -> Dict[metric_types.MetricKey, float]:
  """{key: top-label ECE} from the histogram; NaN without examples."""
  if histogram.total_weight == 0:
    return {key: float('nan')}
  # (n_b / N) * |correct_b / n_b - confidence_b / n_b|, empty bins give 0.
  gaps = np.abs(histogram.weighted_correct - histogram.weighted_confidence)
  return {key: float(np.sum(gaps) / histogram.total_weight)}


def _metric_key(name: str, model_name: str, output_name: str,
                example_weighted: bool) -> metric_types.MetricKey:
  """Returns the MetricKey named `name`, without a sub_key."""
  return metric_types.MetricKey(
      name=name,
      model_name=model_name,
      output_name=output_name,
      example_weighted=example_weighted)


def _derive(
    key: metric_types.MetricKey,
    shared_computations: metric_types.MetricComputations,
    value_fn: Callable[[metric_types.MetricKey, Any],
                       Dict[metric_types.MetricKey, float]]
) -> metric_types.MetricComputations:
  """Returns `shared_computations` plus a metric derived from their output.

  Appends a DerivedMetricComputation declared under `key` whose result is
  `value_fn(key, output)`, with output that of shared_computations[0] (the
  accumulation shared with related metrics). TFMA de-duplicates derived
  computations by their keys and the type name of the result function (the
  same for all of them here), so each metric must come with its own `key`.

  Args:
    key: The metric's key.
    shared_computations: The shared computation, a list of one; appended to.
    value_fn: Maps `key` and the shared output to the metric's values.
  """
  shared_key = shared_computations[0].keys[0]

  def result(
      metrics: Dict[metric_types.MetricKey, Any]
  ) -> Dict[metric_types.MetricKey, float]:
    return value_fn(key, metrics[shared_key])

  shared_computations.append(
      metric_types.DerivedMetricComputation(keys=[key], result=result))
  return shared_computations


def _calibration_histogram(
    num_bins: int,
    eval_config: Optional[config_pb2.EvalConfig],
    model_name: str,
    output_name: str,
    example_weighted: bool) -> metric_types.MetricComputations:
  """Returns the shared computation behind the Brier score and the ECE."""
  key = _metric_key(f'{_CALIBRATION_HISTOGRAM_NAME}_{num_bins}', model_name,
                    output_name, example_weighted)
  return [
      metric_types.MetricComputation(
          keys=[key],
          preprocessors=None,
          combiner=_CalibrationHistogramCombiner(
              key, eval_config, num_bins, example_weighted))
  ]


class _CalibrationHistogram:
  """Example-weighted sums for the Brier score and the ECE.

  Scalars: `total_weight` (N) and `weighted_squared_error` (sum of
  w * sum_k (p_k - y_k)^2). Arrays [num_bins], by top-label confidence bin:
  `weighted_correct` (n_b * accuracy_b) and `weighted_confidence`
  (n_b * mean_confidence_b).
  """

  __slots__ = ['total_weight', 'weighted_squared_error', 'weighted_correct',
               'weighted_confidence']

  def __init__(self, num_bins: int):
    self.total_weight = 0.0
    self.weighted_squared_error = 0.0
    self.weighted_correct = np.zeros(num_bins)
    self.weighted_confidence = np.zeros(num_bins)


class _CalibrationHistogramCombiner(beam.CombineFn):
  """Accumulates a `_CalibrationHistogram` over StandardMetricInputs."""

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[config_pb2.EvalConfig], num_bins: int,
               example_weighted: bool):
    if num_bins < 1:
      raise ValueError(f'num_bins must be positive: num_bins={num_bins}')
    self._key = key
    self._eval_config = eval_config
    self._num_bins = num_bins
    self._example_weighted = example_weighted

  def create_accumulator(self) -> _CalibrationHistogram:
    return _CalibrationHistogram(self._num_bins)

  def add_input(
      self, accumulator: _CalibrationHistogram,
      element: metric_types.StandardMetricInputs) -> _CalibrationHistogram:
    labelled = _prediction_one_hot_weight(
        element, self._eval_config, self._key, self._example_weighted)
    if labelled is None:
      return accumulator
    prediction, one_hot, weight = labelled
    predicted_class = int(np.argmax(prediction))
    confidence = prediction[predicted_class]
    bin_index = int(calibration.confidence_bin(confidence, self._num_bins))
    accumulator.total_weight += weight
    accumulator.weighted_squared_error += (
        weight * float(np.sum((prediction - one_hot)**2)))
    accumulator.weighted_correct[bin_index] += weight * one_hot[predicted_class]
    accumulator.weighted_confidence[bin_index] += weight * confidence
    return accumulator

  def merge_accumulators(
      self, accumulators: Iterable[_CalibrationHistogram]
  ) -> _CalibrationHistogram:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      result.total_weight += accumulator.total_weight
      result.weighted_squared_error += accumulator.weighted_squared_error
      result.weighted_correct += accumulator.weighted_correct
      result.weighted_confidence += accumulator.weighted_confidence
    return result

  def extract_output(
      self, accumulator: _CalibrationHistogram
  ) -> Dict[metric_types.MetricKey, _CalibrationHistogram]:
    return {self._key: accumulator}


def _prediction_one_hot_weight(
    element: metric_types.StandardMetricInputs,
    eval_config: Optional[config_pb2.EvalConfig],
    key: metric_types.MetricKey,
    example_weighted: bool
) -> Optional[Tuple[np.ndarray, np.ndarray, float]]:
  """Returns one example's prediction, one-hot label and weight, or None
  for an example without a label for this output.

  The prediction and the one-hot label are float64 [num_classes], with
  num_classes the prediction's size; the label may come as a class id [1] or
  already as [num_classes]. The weight is 1.0 unless `example_weighted`.
  A negative class id is no label (Transform's -1 for a record without
  one: a topic-only record on the sentiment output, or the other way round).
  """
  # flatten=False keeps the probabilities together; a class id label then
  # arrives as it is ([1]), not one-hot, so it is converted here.
  label, prediction, example_weight = next(
      metric_util.to_label_prediction_example_weight(
          element,
          eval_config=eval_config,
          model_name=key.model_name,
          output_name=key.output_name,
          example_weighted=example_weighted,
          flatten=False,
          require_single_example_weight=True))
  prediction = prediction.astype(np.float64).reshape(-1)
  num_classes = prediction.size
  if num_classes < 2:
    raise ValueError(
        f'{key.name} needs class probabilities [num_classes]: '
        f'prediction={prediction}')
  if label.size == num_classes:
    one_hot = label.astype(np.float64).reshape(-1)
  elif label.size == 1:
    class_id = int(label.reshape(-1)[0])
    if class_id < 0:
      return None
    if class_id >= num_classes:
      raise ValueError(f'label {class_id} is not a class id in '
                       f'[0, {num_classes}): prediction={prediction}')
    one_hot = np.zeros(num_classes)
    one_hot[class_id] = 1.0
  else:
    raise ValueError(
        'label must be a class id [1] or one-hot [num_classes]: '
        f'label={label}, prediction={prediction}')
  return prediction, one_hot, float(example_weight.item())


def _derived_metric(
    source: Callable[..., metric_types.MetricComputations],
    value_fn: Callable[..., Dict[metric_types.MetricKey, float]]
) -> Callable[..., metric_types.MetricComputations]:
  """The computations function of a metric that `value_fn(key, value)`
  derives from the shared computation `source(eval_config, model_name,
  output_name, example_weighted)` (a histogram, a confusion matrix)."""

  def computations(
      name: str,
      eval_config: Optional[config_pb2.EvalConfig] = None,
      model_name: str = '',
      output_name: str = '',
      example_weighted: bool = False) -> metric_types.MetricComputations:
    return _derive(
        _metric_key(name, model_name, output_name, example_weighted),
        source(eval_config, model_name, output_name, example_weighted),
        value_fn)

  return computations


def _argmax_metric(value_fn: Callable[..., Dict[metric_types.MetricKey, float]]
                   ) -> Callable[..., metric_types.MetricComputations]:
  """A metric derived from the shared argmax confusion matrix."""
  return _derived_metric(_argmax_confusion_matrix, value_fn)


def _macro_f1_value(
    key: metric_types.MetricKey, matrix: Optional[np.ndarray]
) -> Dict[metric_types.MetricKey, float]:
  """{key: mean per-class F1}; NaN without examples or with weight 0."""
  if matrix is None or not np.sum(matrix):
    return {key: float('nan')}
  return {key: float(np.mean(_class_f1(matrix)))}


def _accuracy_value(
    key: metric_types.MetricKey, matrix: Optional[np.ndarray]
) -> Dict[metric_types.MetricKey, float]:
  """{key: trace / sum}; NaN without examples or with weight 0."""
  if matrix is None or not np.sum(matrix):
    return {key: float('nan')}
  return {key: float(np.trace(matrix) / np.sum(matrix))}


def _example_count_value(
    key: metric_types.MetricKey, matrix: Optional[np.ndarray]
) -> Dict[metric_types.MetricKey, float]:
  """{key: the matrix's total weight}; 0 without examples."""
  return {key: 0.0 if matrix is None else float(np.sum(matrix))}


def _class_recall(matrix: np.ndarray) -> np.ndarray:
  """TP_c / (TP_c + FN_c) [num_classes]; NaN for a class without examples."""
  return _divide_or(np.diag(matrix), np.sum(matrix, axis=1), np.nan)


def _class_precision(matrix: np.ndarray) -> np.ndarray:
  """TP_c / (TP_c + FP_c) [num_classes]; NaN for a class never predicted."""
  return _divide_or(np.diag(matrix), np.sum(matrix, axis=0), np.nan)


def _class_f1(matrix: np.ndarray) -> np.ndarray:
  """2 TP_c / (2 TP_c + FP_c + FN_c) [num_classes]; 0 where that is 0 / 0."""
  true_positives = np.diag(matrix)
  # 2 TP + FP + FN = (TP + FP) + (TP + FN): column sum plus row sum.
  return _divide_or(2.0 * true_positives,
                    np.sum(matrix, axis=0) + np.sum(matrix, axis=1), 0.0)


def _divide_or(numerator: np.ndarray, denominator: np.ndarray,
               undefined: float) -> np.ndarray:
  """numerator / denominator, `undefined` where the denominator is 0."""
  result = np.full(numerator.shape, undefined, dtype=np.float64)
  np.divide(numerator, denominator, out=result, where=denominator != 0)
  return result


def _per_class_computations_fn(
    statistic: Callable[[np.ndarray], np.ndarray]
) -> Callable[..., metric_types.MetricComputations]:
  """Returns a computations function for a per-class argmax metric.

  `statistic` maps the confusion matrix [num_classes, num_classes] to one
  value per class [num_classes].
  """

  # Declared without a sub_key: the class ids are known only from the data.
  # The key also tells this derived computation apart from the other
  # per-class metrics' (TFMA de-duplicates by keys and result type).
  return _argmax_metric(functools.partial(_per_class_values, statistic))



def _per_class_values(
    statistic: Callable[[np.ndarray], np.ndarray],
    key: metric_types.MetricKey,
    matrix: Optional[np.ndarray]) -> Dict[metric_types.MetricKey, float]:
  """Returns `statistic(matrix)`, one value a class, under `key`'s sub_keys.

  Class c's value goes under `key` with `sub_key=SubKey(class_id=c)`; no
  values ({}) without examples (matrix None).
  """
  if matrix is None:
    return {}
  return {
      key._replace(sub_key=metric_types.SubKey(class_id=class_id)):
          float(value)
      for class_id, value in enumerate(statistic(matrix))
  }


def _argmax_confusion_matrix(
    eval_config: Optional[config_pb2.EvalConfig],
    model_name: str,
    output_name: str,
    example_weighted: bool) -> metric_types.MetricComputations:
  """Returns the shared computation behind the argmax metrics."""
  key = _metric_key(_ARGMAX_CONFUSION_MATRIX_NAME, model_name, output_name,
                    example_weighted)
  return [
      metric_types.MetricComputation(
          keys=[key],
          preprocessors=None,
          combiner=_ArgmaxConfusionMatrixCombiner(key, eval_config,
                                                  example_weighted))
  ]


class _ArgmaxConfusionMatrix:
  """Example-weighted confusion matrix of the argmax prediction.

  `matrix` [num_classes, num_classes]: entry [i, j] is the weight of the
  examples of class i whose argmax is j (rows true class, columns predicted
  class). None until the first example, which sets num_classes.
  """

  __slots__ = ['matrix']

  def __init__(self):
    self.matrix = None


class _ArgmaxConfusionMatrixCombiner(beam.CombineFn):
  """Accumulates an `_ArgmaxConfusionMatrix` over StandardMetricInputs.

  Outputs the matrix [num_classes, num_classes], or None without examples.
  """

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[config_pb2.EvalConfig],
               example_weighted: bool):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted

  def create_accumulator(self) -> _ArgmaxConfusionMatrix:
    return _ArgmaxConfusionMatrix()

  def add_input(
      self, accumulator: _ArgmaxConfusionMatrix,
      element: metric_types.StandardMetricInputs) -> _ArgmaxConfusionMatrix:
    labelled = _prediction_one_hot_weight(
        element, self._eval_config, self._key, self._example_weighted)
    if labelled is None:
      return accumulator
    prediction, one_hot, weight = labelled
    num_classes = prediction.size
    if accumulator.matrix is None:
      accumulator.matrix = np.zeros((num_classes, num_classes))
    elif accumulator.matrix.shape[0] != num_classes:
      raise ValueError(
          f'{num_classes} class probabilities after '
          f'{accumulator.matrix.shape[0]}: prediction={prediction}')
    # np.argmax takes the first maximum. A one-hot label adds the weight to
    # one row of the predicted column.
    accumulator.matrix[:, int(np.argmax(prediction))] += weight * one_hot
    return accumulator

  def merge_accumulators(
      self, accumulators: Iterable[_ArgmaxConfusionMatrix]
  ) -> _ArgmaxConfusionMatrix:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      if accumulator.matrix is None:
        continue
      if result.matrix is None:
        result.matrix = accumulator.matrix.copy()
      elif result.matrix.shape != accumulator.matrix.shape:
        raise ValueError(
            'confusion matrices of different sizes: '
            f'{result.matrix.shape} and {accumulator.matrix.shape}')
      else:
        result.matrix += accumulator.matrix
    return result

  def extract_output(
      self, accumulator: _ArgmaxConfusionMatrix
  ) -> Dict[metric_types.MetricKey, Optional[np.ndarray]]:
    return {self._key: accumulator.matrix}


# The metrics' computations functions, once their parts are defined.
_brier_score = _derived_metric(
    functools.partial(_calibration_histogram, DEFAULT_NUM_BINS),
    _brier_score_value)
_macro_f1 = _argmax_metric(_macro_f1_value)
_accuracy = _argmax_metric(_accuracy_value)
_example_count = _argmax_metric(_example_count_value)
