"""Temperature scaling of a classifier's probabilities, and its measures.

Trained to minimise cross-entropy, the models come out over-confident: a
probability of 0.95 is right less than 95 % of the time. The monitoring
job's thresholds act on the probabilities, so the exported model divides
its logits by one temperature T fitted to held-out examples (Guo et al.,
"On Calibration of Modern Neural Networks", 2017). One scalar cannot move
the argmax, so accuracy and F1 are unchanged; only the confidence moves.

The models output softmax probabilities p, not logits. log p is the logits
less their log-sum-exp, a per-example constant that the softmax cancels, so
softmax(log p / T) is exactly softmax(logits / T).
"""

from typing import Any, Dict

import numpy as np
from scipy import optimize
from scipy import special


# Equal-width bins of the top-label confidence; shared with the Evaluator's
# `models.tfma_metrics.ExpectedCalibrationError`, so the Trainer's and the
# Evaluator's ECE are the same measure.
DEFAULT_NUM_BINS = 10
# Searched over log T; far outside this a model is broken, not uncalibrated.
TEMPERATURE_RANGE = (0.05, 20.0)
# Keeps log p finite where a float32 softmax underflowed to 0.
SMALLEST_PROBABILITY = 1e-30


def confidence_bin(confidence, num_bins: int = DEFAULT_NUM_BINS):
  """The bin index of a confidence in [0, 1]; the last bin is closed at 1."""
  # float64 whatever the input, so a float32 confidence lands in the same
  # bin here and in the Evaluator.
  return np.minimum(
      (np.asarray(confidence, np.float64) * num_bins).astype(np.int64),
      num_bins - 1)


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
  return np.log(np.maximum(np.asarray(probabilities, np.float64),
                           SMALLEST_PROBABILITY))


def scale_probabilities(probabilities: np.ndarray,
                        temperature: float) -> np.ndarray:
  """softmax(log p / T): [N, K] probabilities at temperature T."""
  return special.softmax(_log_probabilities(probabilities) / temperature,
                         axis=1)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray,
                            temperature: float = 1.0) -> float:
  """Mean cross-entropy of class ids `labels` [N] under p [N, K] at T."""
  logits = _log_probabilities(probabilities) / temperature
  log_normaliser = special.logsumexp(logits, axis=1)
  return float(np.mean(
      log_normaliser - logits[np.arange(len(labels)), labels]))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               num_bins: int = DEFAULT_NUM_BINS) -> float:
  """Top-label ECE: sum_b (n_b / N) |accuracy_b - mean confidence_b|."""
  probabilities = np.asarray(probabilities, np.float64)
  predicted = np.argmax(probabilities, axis=1)
  confidence = probabilities[np.arange(len(predicted)), predicted]
  bins = confidence_bin(confidence, num_bins)
  correct = (predicted == np.asarray(labels)).astype(np.float64)
  gap = (np.bincount(bins, weights=correct, minlength=num_bins) -
         np.bincount(bins, weights=confidence, minlength=num_bins))
  return float(np.sum(np.abs(gap)) / len(labels))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """The T in `TEMPERATURE_RANGE` that minimises the NLL of `labels`.

  Args:
    probabilities: float [N, K], each row a softmax output.
    labels: int [N], class ids in [0, K).

  Raises:
    ValueError: on no examples, mismatched shapes or labels outside [0, K).
  """
  probabilities = np.asarray(probabilities)
  labels = np.asarray(labels)
  if probabilities.ndim != 2 or len(probabilities) != len(labels):
    raise ValueError(f'need probabilities [N, K] and labels [N], got '
                     f'{probabilities.shape} and {labels.shape}')
  if not len(labels):
    raise ValueError('cannot fit a temperature to no examples')
  if labels.min() < 0 or labels.max() >= probabilities.shape[1]:
    raise ValueError(f'labels must be class ids in '
                     f'[0, {probabilities.shape[1]}), got {labels.min()}..'
                     f'{labels.max()}')
  lowest, highest = np.log(TEMPERATURE_RANGE)
  result = optimize.minimize_scalar(
      lambda log_t: negative_log_likelihood(probabilities, labels,
                                            np.exp(log_t)),
      bounds=(lowest, highest), method='bounded',
      options={'xatol': 1e-4})
  return float(np.exp(result.x))


def at_range_bound(temperature: float) -> bool:
  """Whether a fitted T sits on an end of TEMPERATURE_RANGE: too few or
  too one-sided held-out examples, or a model that learned nothing."""
  return any(abs(np.log(temperature) - np.log(bound)) < 1e-3
             for bound in TEMPERATURE_RANGE)


def calibration_report(probabilities: np.ndarray, labels: np.ndarray,
                       temperature: float) -> Dict[str, Any]:
  """NLL and ECE of `probabilities` before and after scaling by T, and
  over how many examples."""
  scaled = scale_probabilities(probabilities, temperature)
  return {
      'examples': len(labels),
      'nll_before': round(negative_log_likelihood(probabilities, labels), 4),
      'nll_after': round(negative_log_likelihood(scaled, labels), 4),
      'ece_before': round(expected_calibration_error(probabilities, labels), 4),
      'ece_after': round(expected_calibration_error(scaled, labels), 4),
  }
