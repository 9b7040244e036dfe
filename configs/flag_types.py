"""argparse types of finsent's numeric flags, one per kind of number.

A bad value makes argparse exit 2 with the flag's name and what was wrong:
"argument --max_epochs: must be at least 1, got 0".
"""

import argparse
import math
from typing import Any, Callable, Optional


def _converted(value: str, convert: Callable[[str], Any], kind: str) -> Any:
  try:
    return convert(value)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f'expected {kind}, got {value!r}') from None


def int_at_least(low: int) -> Callable[[str], int]:
  """A whole number from `low` up."""
  def parse(value: str) -> int:
    number = _converted(value, int, 'a whole number')
    if number < low:
      raise argparse.ArgumentTypeError(
          f'must be at least {low}, got {number}')
    return number
  return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def float_in(low: float, high: Optional[float] = None, *,
             low_included: bool = True,
             high_included: bool = False) -> Callable[[str], float]:
  """A finite number from `low` to `high` (None: no upper bound), each
  bound included or not."""
  def parse(value: str) -> float:
    number = _converted(value, float, 'a number')
    # `not >=` / `not >` also catch nan.
    below_low = not (number >= low if low_included else number > low)
    above_high = high is not None and (
        number > high if high_included else number >= high)
    if below_low or above_high:
      bound = ('' if high is None else
               f' and {"at most" if high_included else "below"} {high:g}')
      raise argparse.ArgumentTypeError(
          f'must be {"at least" if low_included else "above"} {low:g}'
          f'{bound}, got {value}')
    if math.isinf(number):
      raise argparse.ArgumentTypeError(f'must be a finite number, got {value}')
    return number
  return parse


positive_float = float_in(0.0, low_included=False)
