"""Temperature scaling (models.calibration): measures and fit."""

import numpy as np
import pytest
from scipy import special

from finsent.models import calibration


def _sample(count, temperature, seed):
  """Labels drawn from softmax(z) and a model that reports softmax(z / T)."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(scale=2.0, size=(count, 3))
  calibrated = special.softmax(logits, axis=1)
  labels = np.array([rng.choice(3, p=p) for p in calibrated])
  return special.softmax(logits / temperature, axis=1), labels


def test_ece_by_hand():
  probabilities = np.array([
      [0.95, 0.03, 0.02],  # bin 9, right
      [0.05, 0.91, 0.04],  # bin 9, wrong
      [0.60, 0.30, 0.10],  # bin 6, right
      [0.10, 0.25, 0.65],  # bin 6, wrong
      [0.20, 0.30, 1.00 / 2],  # bin 5, right
  ])
  labels = np.array([0, 2, 0, 1, 2])
  # bin 9: |1 - 1.86| ; bin 6: |1 - 1.25| ; bin 5: |1 - 0.5|, over N = 5.
  expected = (0.86 + 0.25 + 0.5) / 5
  assert calibration.expected_calibration_error(
      probabilities, labels) == pytest.approx(expected)


def test_confidence_bins_close_the_last_bin_at_one():
  assert calibration.confidence_bin(
      [0.0, 0.0999, 0.1, 0.95, 1.0]).tolist() == [0, 0, 1, 9, 9]
  assert calibration.confidence_bin(0.5, num_bins=4) == 2


def test_scaling_keeps_the_argmax_and_is_the_identity_at_one():
  probabilities, _ = _sample(200, 0.5, seed=1)
  np.testing.assert_allclose(
      calibration.scale_probabilities(probabilities, 1.0), probabilities,
      atol=1e-12)
  for temperature in (0.3, 2.0, 7.0):
    scaled = calibration.scale_probabilities(probabilities, temperature)
    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    assert (scaled.argmax(axis=1) == probabilities.argmax(axis=1)).all()
  # An underflowed probability (0 in float32) stays finite.
  zero = calibration.scale_probabilities(np.array([[1.0, 0.0, 0.0]]), 2.0)
  assert np.isfinite(zero).all() and zero[0, 0] > 0.99


@pytest.mark.parametrize('true_temperature', [0.4, 1.0, 2.5])
def test_fit_recovers_the_temperature_of_a_miscalibrated_model(
    true_temperature):
  # A model that reports softmax(z / t) needs T = 1 / t to be calibrated.
  probabilities, labels = _sample(6000, true_temperature, seed=2)
  fitted = calibration.fit_temperature(probabilities, labels)
  assert fitted == pytest.approx(1 / true_temperature, rel=0.1)


def test_calibration_makes_ece_no_worse_on_held_out_data():
  # Over-confident, as a network trained to minimise cross-entropy is.
  fit_probabilities, fit_labels = _sample(3000, 0.5, seed=3)
  held_probabilities, held_labels = _sample(3000, 0.5, seed=4)
  temperature = calibration.fit_temperature(fit_probabilities, fit_labels)
  report = calibration.calibration_report(held_probabilities, held_labels,
                                          temperature)
  assert temperature > 1
  assert report['ece_after'] <= report['ece_before']
  assert report['nll_after'] <= report['nll_before']
  assert report['ece_before'] > 0.05 and report['ece_after'] < 0.03, report


@pytest.mark.parametrize('probabilities, labels, message', [
    (np.zeros((0, 3)), np.zeros(0, np.int64), 'no examples'),
    (np.full((4, 3), 1 / 3), np.zeros(3, np.int64), r'labels \[N\]'),
    (np.full((2, 3), 1 / 3), np.array([0, 3]), r'class ids in \[0, 3\)'),
    (np.full((2, 3), 1 / 3), np.array([-1, 0]), r'class ids in \[0, 3\)'),
])
def test_fit_refuses_bad_input(probabilities, labels, message):
  with pytest.raises(ValueError, match=message):
    calibration.fit_temperature(probabilities, labels)


def test_a_temperature_at_the_end_of_its_range_is_flagged():
  # Every held-out example right at 0.4 confidence: NLL falls as T falls.
  probabilities = np.tile([0.4, 0.3, 0.3], (100, 1))
  temperature = calibration.fit_temperature(probabilities, np.zeros(100, int))
  assert calibration.at_range_bound(temperature)
  assert not calibration.at_range_bound(1.7)
