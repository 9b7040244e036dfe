"""Tests for models.tfma_metrics: calibration and argmax metrics, by hand and
in TFMA."""

import numpy as np
import pandas as pd
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types

from finsent.models import tfma_metrics

# Four examples, values exact in binary. Confidences 0.75 (bin 7, 2 right of
# 2) and 0.625 (bin 6, 1 right of 2). Squared errors per example: 0.09375,
# 0.96875, 0.21875, 0.09375.
MIXED_LABELS = [0, 1, 2, 1]
MIXED_PROBABILITIES = [[0.75, 0.125, 0.125],
                       [0.625, 0.25, 0.125],
                       [0.125, 0.25, 0.625],
                       [0.125, 0.75, 0.125]]


def _compute(metric, labels, probabilities, weights=None):
  """Runs `metric`'s computations on StandardMetricInputs.

  The examples go to two accumulators that are then merged, as Beam may do.
  Returns the public metrics as {name: value}, or {(name, class_id): value}
  for a key with a class_id sub_key.
  """
  return {(key.name if key.sub_key is None else
           (key.name, key.sub_key.class_id)): value
          for key, value in _compute_keys(metric, labels, probabilities,
                                          weights).items()}


def _compute_keys(metric, labels, probabilities, weights=None):
  """As `_compute`, keyed by the full MetricKeys."""
  example_weighted = weights is not None
  if weights is None:
    weights = [1.0] * len(labels)
  inputs = [
      metric_types.StandardMetricInputs(
          labels=np.asarray(label), predictions=np.asarray(probability),
          example_weights=np.array([weight]))
      for label, probability, weight in zip(labels, probabilities, weights)]
  metrics = {}
  derived = []
  for computation in metric.computations(example_weighted=example_weighted):
    if isinstance(computation, metric_types.DerivedMetricComputation):
      derived.append(computation)
      continue
    combiner = computation.combiner
    halves = [combiner.create_accumulator(), combiner.create_accumulator()]
    for i, element in enumerate(inputs):
      halves[i % 2] = combiner.add_input(halves[i % 2], element)
    metrics.update(
        combiner.extract_output(combiner.merge_accumulators(halves)))
  for computation in derived:
    metrics.update(computation.result(metrics))
  return {key: value for key, value in metrics.items()
          if not key.name.startswith('_')}


def test_mixed_examples_match_hand_computed_values():
  brier = _compute(tfma_metrics.MultiClassBrierScore(), MIXED_LABELS,
                   MIXED_PROBABILITIES)
  ece = _compute(tfma_metrics.ExpectedCalibrationError(), MIXED_LABELS,
                 MIXED_PROBABILITIES)
  assert brier == {'brier_score': pytest.approx(1.375 / 4)}
  # Bin 6: 2/4 * |0.5 - 0.625|; bin 7: 2/4 * |1.0 - 0.75|.
  assert ece == {'expected_calibration_error': pytest.approx(0.1875)}


def test_one_bin_ece_is_the_overall_confidence_gap():
  ece = _compute(tfma_metrics.ExpectedCalibrationError(num_bins=1),
                 MIXED_LABELS, MIXED_PROBABILITIES)
  # |3/4 accuracy - 2.75/4 mean confidence|.
  assert ece == {'expected_calibration_error': pytest.approx(0.0625)}


def test_example_weights_are_applied():
  weights = [3.0, 1.0, 1.0, 1.0]
  brier = _compute(tfma_metrics.MultiClassBrierScore(), MIXED_LABELS,
                   MIXED_PROBABILITIES, weights)
  ece = _compute(tfma_metrics.ExpectedCalibrationError(), MIXED_LABELS,
                 MIXED_PROBABILITIES, weights)
  assert brier == {'brier_score': pytest.approx(1.5625 / 6)}
  # Bin 6: |1 right - 1.25 confidence|; bin 7: |4 right - 3.0 confidence|.
  assert ece == {'expected_calibration_error': pytest.approx(1.25 / 6)}


def test_one_hot_labels_equal_class_ids():
  one_hot = np.eye(3)[MIXED_LABELS]
  for metric in (tfma_metrics.MultiClassBrierScore(),
                 tfma_metrics.ExpectedCalibrationError()):
    assert (_compute(metric, one_hot, MIXED_PROBABILITIES) ==
            _compute(metric, MIXED_LABELS, MIXED_PROBABILITIES))


EXTREME_CASES = [
    # Perfect: every prediction one-hot and right.
    ([0, 1, 2, 1], np.eye(3)[[0, 1, 2, 1]], 0.0, 0.0),
    # Calibrated, not perfect: 0.75 confidence, 3 of 4 right.
    ([0, 1, 2, 0], [[0.75, 0.125, 0.125], [0.125, 0.75, 0.125],
                    [0.125, 0.125, 0.75], [0.125, 0.75, 0.125]],
     (3 * 0.09375 + 1.34375) / 4, 0.0),
    # Confidently wrong: every prediction one-hot on a wrong class.
    ([0, 1, 2, 1], np.eye(3)[[1, 2, 0, 0]], 2.0, 1.0),
]


@pytest.mark.parametrize('labels, probabilities, brier, ece', EXTREME_CASES)
def test_extreme_cases(labels, probabilities, brier, ece):
  assert (_compute(tfma_metrics.MultiClassBrierScore(), labels, probabilities)
          == {'brier_score': pytest.approx(brier)})
  assert (_compute(tfma_metrics.ExpectedCalibrationError(), labels,
                   probabilities)
          == {'expected_calibration_error': pytest.approx(ece)})


def test_label_outside_the_classes_is_an_error():
  with pytest.raises(ValueError, match='not a class id'):
    _compute(tfma_metrics.MultiClassBrierScore(), [3], [[0.5, 0.25, 0.25]])


def _numpy_brier_and_ece(labels, probabilities, num_bins):
  """Reference values, vectorised over [N] labels and [N, 3] probabilities."""
  one_hot = np.eye(probabilities.shape[1])[labels]
  brier = np.mean(np.sum((probabilities - one_hot)**2, axis=1))
  confidence = probabilities.max(axis=1)
  correct = probabilities.argmax(axis=1) == labels
  bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
  ece = sum(
      np.mean(bins == b) *
      abs(correct[bins == b].mean() - confidence[bins == b].mean())
      for b in np.unique(bins))
  return brier, ece


def _analyze_raw_data(labels, probabilities, metric_configs,
                      output_path=None):
  """Runs tfma.analyze_raw_data on the examples, overall slice only.

  The DataFrame has columns 'label' (class ids) and 'probabilities'; the
  EvalConfig has one MetricsSpec with `metric_configs`. Returns the EvalResult.
  """
  data = pd.DataFrame({'label': labels,
                       'probabilities': list(probabilities)})
  eval_config = tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(label_key='label',
                                  prediction_key='probabilities')],
      slicing_specs=[tfma.SlicingSpec()],
      metrics_specs=[tfma.MetricsSpec(metrics=metric_configs)])
  return tfma.analyze_raw_data(data, eval_config, output_path=output_path)


def test_analyze_raw_data_matches_numpy():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, size=60)
  probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=60)

  result = _analyze_raw_data(labels, probabilities, [
      tfma.MetricConfig(class_name='MultiClassBrierScore',
                        module='finsent.models.tfma_metrics'),
      tfma.MetricConfig(class_name='ExpectedCalibrationError',
                        module='finsent.models.tfma_metrics'),
      tfma.MetricConfig(class_name='ExpectedCalibrationError',
                        module='finsent.models.tfma_metrics',
                        config='{"num_bins": 4, "name": "ece_4_bins"}'),
  ])

  metrics = result.get_metrics_for_slice()
  values = {name: value['doubleValue'] for name, value in metrics.items()}
  brier, ece = _numpy_brier_and_ece(labels, probabilities, 10)
  _, ece_4_bins = _numpy_brier_and_ece(labels, probabilities, 4)
  assert values == {
      'brier_score': pytest.approx(brier),
      'expected_calibration_error': pytest.approx(ece),
      'ece_4_bins': pytest.approx(ece_4_bins),
  }


# Six examples, 3 classes (values exact in binary). Argmax per example:
# 0, 0, 1, 0, 1 (a tie of 1 and 2 goes to the first), 0; four top
# probabilities are below 0.5 and still count as the prediction; class 2 is
# never predicted. Confusion matrix (rows true, columns predicted):
#   [[2, 0, 0],
#    [1, 1, 0],
#    [1, 1, 0]]
ARGMAX_LABELS = [0, 0, 1, 1, 2, 2]
ARGMAX_PROBABILITIES = [[0.4375, 0.3125, 0.25],
                        [0.75, 0.125, 0.125],
                        [0.25, 0.4375, 0.3125],
                        [0.375, 0.3125, 0.3125],
                        [0.125, 0.4375, 0.4375],
                        [0.5, 0.25, 0.25]]
ARGMAX_METRICS = (tfma_metrics.MacroF1Score(), tfma_metrics.PerClassRecall(),
                  tfma_metrics.PerClassPrecision(), tfma_metrics.PerClassF1())


def _compute_argmax_metrics(labels, probabilities, weights=None):
  values = {}
  for metric in ARGMAX_METRICS:
    values.update(_compute(metric, labels, probabilities, weights))
  return values


def _per_class(name, values):
  return {(name, class_id): value for class_id, value in enumerate(values)}


def test_argmax_metrics_match_hand_computed_values():
  values = _compute_argmax_metrics(ARGMAX_LABELS, ARGMAX_PROBABILITIES)
  # TP = [2, 1, 0], FP = [2, 1, 0], FN = [0, 1, 2].
  expected = {
      # F1 = 4/6, 2/4, 0/2.
      'macro_f1': (2 / 3 + 1 / 2 + 0) / 3,
      **_per_class('class_recall', [1.0, 0.5, 0.0]),
      # Class 2 is never predicted: precision undefined.
      **_per_class('class_precision', [0.5, 0.5, float('nan')]),
      **_per_class('class_f1', [2 / 3, 0.5, 0.0]),
  }
  assert values == pytest.approx(expected, nan_ok=True)
  assert values['macro_f1'] == pytest.approx(7 / 18)


def test_argmax_metrics_apply_example_weights():
  weights = [1.0, 1.0, 1.0, 1.0, 1.0, 3.0]
  values = _compute_argmax_metrics(ARGMAX_LABELS, ARGMAX_PROBABILITIES,
                                   weights)
  # Row 2 becomes [3, 1, 0]: TP = [2, 1, 0], FP = [4, 1, 0], FN = [0, 1, 4].
  expected = {
      'macro_f1': (1 / 2 + 1 / 2 + 0) / 3,
      **_per_class('class_recall', [1.0, 0.5, 0.0]),
      **_per_class('class_precision', [1 / 3, 0.5, float('nan')]),
      **_per_class('class_f1', [0.5, 0.5, 0.0]),
  }
  assert values == pytest.approx(expected, nan_ok=True)


def test_argmax_metric_keys():
  keys = set()
  for metric in ARGMAX_METRICS:
    keys.update(_compute_keys(metric, ARGMAX_LABELS, ARGMAX_PROBABILITIES))
  assert keys == {
      metric_types.MetricKey(name='macro_f1'),
      *(metric_types.MetricKey(name=name,
                               sub_key=metric_types.SubKey(class_id=class_id))
        for name in ('class_recall', 'class_precision', 'class_f1')
        for class_id in range(3)),
  }


def test_argmax_metrics_share_one_confusion_matrix():
  computations = []
  for metric in ARGMAX_METRICS:
    computations.extend(metric.computations(example_weighted=True))
  shared = {computation.keys[0] for computation in computations
            if isinstance(computation, metric_types.MetricComputation)}
  assert shared == {metric_types.MetricKey(name='_argmax_confusion_matrix',
                                           example_weighted=True)}
  derived = [computation for computation in computations
             if isinstance(computation, metric_types.DerivedMetricComputation)]
  # Distinct, so TFMA's de-duplication keeps all four.
  assert len(set(derived)) == len(ARGMAX_METRICS)


def test_argmax_metrics_without_examples():
  values = _compute_argmax_metrics([], [])
  assert list(values) == ['macro_f1']
  assert np.isnan(values['macro_f1'])


def test_one_hot_labels_equal_class_ids_for_argmax_metrics():
  one_hot = np.eye(3)[ARGMAX_LABELS]
  assert (_compute_argmax_metrics(one_hot, ARGMAX_PROBABILITIES) ==
          pytest.approx(_compute_argmax_metrics(ARGMAX_LABELS,
                                                ARGMAX_PROBABILITIES),
                        nan_ok=True))


ALL_METRICS = (*ARGMAX_METRICS, tfma_metrics.ArgmaxAccuracy(),
               tfma_metrics.LabelledExampleCount(),
               tfma_metrics.MultiClassBrierScore(),
               tfma_metrics.ExpectedCalibrationError())


@pytest.mark.parametrize('weights', [None, [1.0, 2.0, 1.0, 1.0, 5.0, 3.0,
                                            1.0, 2.0, 4.0]])
def test_examples_without_a_label_are_left_out(weights):
  """A negative class id (Transform's -1: a topic-only record on the
  sentiment output) counts nowhere: every metric equals its value over the
  labelled examples alone."""
  labels = [-1, *ARGMAX_LABELS[:3], -1, *ARGMAX_LABELS[3:], -1]
  probabilities = [[0.9, 0.05, 0.05], *ARGMAX_PROBABILITIES[:3],
                   [0.1, 0.1, 0.8], *ARGMAX_PROBABILITIES[3:],
                   [0.2, 0.7, 0.1]]
  labelled = [i for i, label in enumerate(labels) if label >= 0]
  for metric in ALL_METRICS:
    assert _compute(metric, labels, probabilities, weights) == pytest.approx(
        _compute(metric, [labels[i] for i in labelled],
                 [probabilities[i] for i in labelled],
                 weights and [weights[i] for i in labelled]),
        nan_ok=True), metric.name


def test_labelled_example_count():
  assert _compute(tfma_metrics.LabelledExampleCount(), [0, -1, 2],
                  [[0.5, 0.25, 0.25]] * 3) == {'example_count': 2.0}
  assert _compute(tfma_metrics.LabelledExampleCount(), [0, -1, 2],
                  [[0.5, 0.25, 0.25]] * 3, [2.0, 5.0, 0.5]) == {
                      'example_count': 2.5}
  assert _compute(tfma_metrics.LabelledExampleCount(), [-1],
                  [[0.5, 0.25, 0.25]]) == {'example_count': 0.0}


def _numpy_macro_f1_and_recall(labels, probabilities):
  """Reference argmax macro-F1 and per-class recall [3], without sklearn."""
  predicted = probabilities.argmax(axis=1)
  f1, recall = [], []
  for c in range(probabilities.shape[1]):
    tp = np.sum((predicted == c) & (labels == c))
    fp = np.sum((predicted == c) & (labels != c))
    fn = np.sum((predicted != c) & (labels == c))
    f1.append(2 * tp / (2 * tp + fp + fn))
    recall.append(tp / (tp + fn))
  return np.mean(f1), recall


def test_analyze_raw_data_argmax_metrics_and_threshold(tmp_path):
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 3, size=60)
  probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=60)
  # Many top probabilities are below 0.5: TFMA's 0.5-threshold F1 and recall
  # would ignore those predictions, the argmax metrics must not.
  assert np.sum(probabilities.max(axis=1) < 0.5) >= 10
  macro_f1, recall = _numpy_macro_f1_and_recall(labels, probabilities)

  def lower_bound(value):
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
        lower_bound={'value': value}))

  result = _analyze_raw_data(labels, probabilities, [
      tfma.MetricConfig(
          class_name='MacroF1Score', module='finsent.models.tfma_metrics',
          # Two bounds on the same key: the one below the value passes, the
          # one above fails.
          per_slice_thresholds=[
              tfma.PerSliceMetricThreshold(
                  slicing_specs=[tfma.SlicingSpec()],
                  threshold=lower_bound(macro_f1 - 0.05)),
              tfma.PerSliceMetricThreshold(
                  slicing_specs=[tfma.SlicingSpec()],
                  threshold=lower_bound(macro_f1 + 0.05)),
          ]),
      tfma.MetricConfig(class_name='PerClassRecall',
                        module='finsent.models.tfma_metrics'),
  ], output_path=str(tmp_path))

  metrics = result.get_metrics_for_slice()
  values = {name: value['doubleValue'] for name, value in metrics.items()}
  assert values['macro_f1'] == pytest.approx(macro_f1)
  # Per-class values come back under 'classId:<c>' sub-keys.
  per_class = result.get_metrics_for_slice(class_id=1)
  assert per_class['class_recall']['doubleValue'] == pytest.approx(recall[1])
  assert {c: result.get_metrics_for_slice(class_id=c)['class_recall']
          ['doubleValue'] for c in range(3)} == pytest.approx(
              dict(enumerate(recall)))

  validation = tfma.load_validation_result(str(tmp_path))
  assert not validation.validation_ok
  [slice_validation] = validation.metric_validations_per_slice
  [failure] = slice_validation.failures
  assert failure.metric_key.name == 'macro_f1'
  assert not failure.metric_key.HasField('sub_key')
  assert failure.metric_value.double_value.value == pytest.approx(macro_f1)
  assert (failure.metric_threshold.value_threshold.lower_bound.value ==
          pytest.approx(macro_f1 + 0.05))


@pytest.mark.parametrize('weighted', [False, True])
def test_argmax_accuracy_is_keras_sparse_categorical_accuracy(weighted):
  """The metric the gates' accuracy threshold reads, as Keras's (which it
  replaces in the EvalConfig) computes it, ties included."""
  import keras  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(7)
  labels = rng.integers(0, 3, size=50)
  probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=50)
  probabilities[:5] = [0.4, 0.4, 0.2]  # ties go to the lowest class id
  weights = rng.uniform(0.5, 2.0, size=50) if weighted else None
  keras_accuracy = keras.metrics.SparseCategoricalAccuracy()
  keras_accuracy.update_state(labels, probabilities, sample_weight=weights)
  values = _compute(tfma_metrics.ArgmaxAccuracy(), labels, probabilities,
                    None if weights is None else list(weights))
  assert values == {'sparse_categorical_accuracy': pytest.approx(
      float(keras_accuracy.result()), abs=1e-6)}
  assert np.isnan(_compute(tfma_metrics.ArgmaxAccuracy(), [], [])[
      'sparse_categorical_accuracy'])
