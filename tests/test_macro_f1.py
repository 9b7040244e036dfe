"""The Keras macro-F1 metric (models.macro_f1) against scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from finsent.models import macro_f1


def test_matches_scikit_learn_over_several_batches():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, size=500)
  probabilities = rng.dirichlet([1, 1, 1], size=500)
  metric = macro_f1.SparseMacroF1Score(num_classes=3)
  for start in range(0, 500, 128):
    metric.update_state(labels[start:start + 128, None],
                        probabilities[start:start + 128])
  expected = sklearn_metrics.f1_score(labels, probabilities.argmax(axis=1),
                                      average='macro')
  assert float(metric.result()) == pytest.approx(expected, abs=1e-5)


def test_config_round_trip():
  metric = macro_f1.SparseMacroF1Score(num_classes=3, name='f1')
  copy = macro_f1.SparseMacroF1Score.from_config(metric.get_config())
  assert (copy.name, copy.num_classes) == ('f1', 3)
