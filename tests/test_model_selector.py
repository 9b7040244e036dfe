"""components.model_selector.select: the documented tournament rule."""

from finsent.components import model_selector


def _candidate(macro_f1, p50_ms, blessed=1):
  return {'macro_f1': macro_f1, model_selector.P50_LATENCY_MS: p50_ms,
          model_selector.BLESSED: blessed}


def test_higher_macro_f1_wins_even_when_slower():
  winner, reason = model_selector.select(
      {'rnn': _candidate(0.70, 1.0), 'transformer': _candidate(0.74, 3.0)},
      tie_margin=0.005)
  assert winner == 'transformer'
  assert reason == ('transformer: highest macro-F1 (0.7400); vs rnn '
                    'macro-F1 0.7000, p50 1.00 ms')


def test_a_tie_within_the_margin_goes_to_the_faster_model():
  winner, reason = model_selector.select(
      {'rnn': _candidate(0.701, 1.0), 'transformer': _candidate(0.704, 3.0)},
      tie_margin=0.005)
  assert winner == 'rnn'
  assert reason.startswith('rnn: macro-F1 within the tie margin 0.005, and '
                           'faster (p50 1.00 ms)')


def test_only_blessed_candidates_compete():
  winner, reason = model_selector.select(
      {'rnn': _candidate(0.60, 1.0),
       'transformer': _candidate(0.80, 3.0, blessed=0)},
      tie_margin=0.005)
  assert winner == 'rnn'
  assert 'only blessed candidate' in reason and 'not blessed' in reason


def test_when_none_is_blessed_macro_f1_still_decides_and_says_so():
  winner, reason = model_selector.select(
      {'rnn': _candidate(0.30, 1.0, blessed=0),
       'transformer': _candidate(0.20, 3.0, blessed=0)}, tie_margin=0.005)
  assert winner == 'rnn'
  assert reason.startswith('rnn: highest macro-F1 (0.3000), though no '
                           'candidate was blessed; vs transformer')
