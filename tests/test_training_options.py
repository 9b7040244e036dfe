"""Training options of models.trainer: label smoothing and focal weighting
(the loss against a count by hand) and the warm-up + cosine learning-rate schedule."""

import math
import types

import keras
import numpy as np
import pytest

from finsent.models import sparse_focal_crossentropy
from finsent.models import trainer

PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
LABELS = np.array([0, 1])


def test_label_smoothing_by_hand():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.3, reduction=None)
  # Targets: 0.7 + 0.1 on the label, 0.1 on each other class.
  expected = [-(0.8 * math.log(0.7) + 0.1 * math.log(0.2) +
                0.1 * math.log(0.1)),
              -(0.1 * math.log(0.1) + 0.8 * math.log(0.3) +
                0.1 * math.log(0.6))]
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(loss(LABELS, PROBABILITIES)), expected,
      rtol=1e-5)


def test_focal_weighting_by_hand():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, focal_gamma=2.0, reduction=None)
  # -(1 - p)^2 log p of the label's probability p: the confident right
  # example (0.7) is weighed down 11 times, the unsure one (0.3) 2 times.
  expected = [-(0.3 ** 2) * math.log(0.7), -(0.7 ** 2) * math.log(0.3)]
  np.testing.assert_allclose(
      keras.ops.convert_to_numpy(loss(LABELS, PROBABILITIES)), expected,
      rtol=1e-5)


def test_focal_weighting_of_smoothed_targets_by_hand():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.3, focal_gamma=1.0, reduction=None)
  terms = [(0.8, 0.7), (0.1, 0.2), (0.1, 0.1)]
  expected = -sum(target * (1 - p) * math.log(p) for target, p in terms)
  assert float(loss(LABELS[:1], PROBABILITIES[:1])[0]) == pytest.approx(
      expected, rel=1e-5)


def test_no_smoothing_is_the_sparse_cross_entropy():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(3)
  plain = keras.losses.SparseCategoricalCrossentropy()
  # Labels as Keras passes them from a [batch, 1] feature, too.
  for labels in (LABELS, LABELS[:, None]):
    assert float(loss(labels, PROBABILITIES)) == pytest.approx(
        float(plain(labels, PROBABILITIES)), rel=1e-6)


def test_config_round_trip_and_bad_arguments():
  loss = sparse_focal_crossentropy.SparseFocalCrossentropy(
      3, label_smoothing=0.1)
  copy = keras.losses.deserialize(keras.losses.serialize(loss))
  assert (copy.num_classes, copy.label_smoothing, copy.focal_gamma) == (
      3, 0.1, 0.0)
  with pytest.raises(ValueError, match='label_smoothing must be in'):
    sparse_focal_crossentropy.SparseFocalCrossentropy(3, 1.0)
  for gamma in (-1.0, float('nan')):
    with pytest.raises(ValueError, match='focal_gamma must be at least 0'):
      sparse_focal_crossentropy.SparseFocalCrossentropy(3, focal_gamma=gamma)
  with pytest.raises(ValueError, match='num_classes must be at least 2'):
    sparse_focal_crossentropy.SparseFocalCrossentropy(1)


def _schedule(name, epochs=4, batches_per_epoch=10, warmup_epochs=1.0):
  return trainer.learning_rate_schedule(
      {'learning_rate_schedule': name, 'warmup_epochs': warmup_epochs}, 1e-3,
      types.SimpleNamespace(epochs=epochs,
                            batches_per_epoch=batches_per_epoch))


def test_warmup_then_cosine_decay():
  schedule = _schedule('warmup_cosine')
  rate = lambda step: float(schedule(step))
  # 40 steps: up over the first 10, then half a cosine over 30.
  assert rate(0) == 0.0
  assert rate(5) == pytest.approx(5e-4)
  assert rate(10) == pytest.approx(1e-3)
  assert rate(25) == pytest.approx(5e-4)
  assert rate(40) == pytest.approx(0.0, abs=1e-9)
  assert _schedule('constant') == 1e-3


def test_warmup_longer_than_training_leaves_one_decay_step():
  schedule = _schedule('warmup_cosine', epochs=1, batches_per_epoch=1,
                       warmup_epochs=5.0)
  assert float(schedule(0)) == pytest.approx(1e-3)
  with pytest.raises(ValueError, match='learning_rate_schedule must be one'):
    _schedule('cyclic')
