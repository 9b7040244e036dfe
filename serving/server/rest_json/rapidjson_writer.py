"""JSON written the way TF Serving writes it, with rapidjson's PrettyWriter.

TF Serving writes predict, classify and error bodies with rapidjson's
PrettyWriter (4-space indent, rows kept on one line), formats tensor
numbers with json_tensor.cc's WriteDecimal and quotes JSON values in error
messages with rapidjson's own number printing. That layout is reproduced
here instead of json.dumps output, so clients that compare bodies or parse
numbers textually see what TF Serving would send.
"""

import math
from typing import Any

import numpy as np

_INDENT = '    '

# rapidjson's Writer escapes only '"', '\\' and control characters, the latter
# with upper-case hex; everything else (UTF-8 included) is written raw.
_RAPIDJSON_ESCAPES = {i: '\\u%04X' % i for i in range(0x20)}
_RAPIDJSON_ESCAPES.update({
    0x08: '\\b', 0x09: '\\t', 0x0A: '\\n', 0x0C: '\\f', 0x0D: '\\r',
    ord('"'): '\\"', ord('\\'): '\\\\'})


def rapidjson_string(text: str) -> str:
  """`text` as a quoted JSON string, escaped as rapidjson escapes it."""
  return '"' + text.translate(_RAPIDJSON_ESCAPES) + '"'


def bytes_text(value: bytes) -> str:
  """A string tensor's bytes as text for the writer (encode_body undoes it)."""
  # Tensor strings are arbitrary bytes and rapidjson copies them verbatim;
  # surrogateescape carries undecodable bytes through to the encoded body.
  return value.decode('utf-8', 'surrogateescape')


def encode_body(text: str) -> bytes:
  """The response body: UTF-8, with bytes_text's raw bytes restored."""
  return text.encode('utf-8', 'surrogateescape')


def write_decimal(value: float, single: bool) -> str:
  """Formats a float the way json_tensor.cc's WriteDecimal does.

  Six significant digits unless that does not round-trip, then full
  precision; whole numbers get '.0' so a list never mixes ints and floats.

  Args:
    value: the number; for float32 tensors, the float32 value as a float.
    single: whether the number is a float32 (round-trip checked as float32).

  Returns:
    The JSON token, including NaN / Infinity / -Infinity.
  """
  if math.isnan(value):
    return 'NaN'
  if math.isinf(value):
    return '-Infinity' if value < 0 else 'Infinity'
  text = '%g' % value
  round_trip = float(np.float32(text)) if single else float(text)
  if round_trip != value:
    text = ('%.9g' if single else '%.17g') % value
  if '.' not in text and 'e' not in text:
    text += '.0'
  return text


def _grisu_double(value: float) -> str:
  """Formats a float like rapidjson's Writer::Double (shortest digits).

  Only error messages that quote a nested JSON value use this; TF Serving's
  tensor output goes through write_decimal.
  """
  if math.isnan(value):
    return 'NaN'
  if math.isinf(value):
    return '-Infinity' if value < 0 else 'Infinity'
  sign = '-' if math.copysign(1.0, value) < 0 else ''
  if value == 0:
    return sign + '0.0'
  mantissa, _, exponent = repr(abs(value)).partition('e')
  whole, _, fraction = mantissa.partition('.')
  digits = (whole + fraction).lstrip('0')
  k = int(exponent or 0) - len(fraction)
  stripped = digits.rstrip('0')
  k += len(digits) - len(stripped)
  digits = stripped
  kk = len(digits) + k  # 10^(kk-1) <= |value| < 10^kk
  if 0 <= k and kk <= 21:
    text = digits + '0' * k + '.0'
  elif 0 < kk <= 21:
    text = digits[:kk] + '.' + digits[kk:]
  elif -6 < kk <= 0:
    text = '0.' + '0' * -kk + digits
  elif len(digits) == 1:
    text = digits + 'e' + str(kk - 1)
  else:
    text = digits[0] + '.' + digits[1:] + 'e' + str(kk - 1)
  return sign + text


def _pretty_value(value: Any, depth: int) -> str:
  """A parsed JSON value in rapidjson PrettyWriter's default layout."""
  if isinstance(value, dict):
    if not value:
      return '{}'
    inner = _INDENT * (depth + 1)
    members = [f'{inner}{rapidjson_string(k)}: {_pretty_value(v, depth + 1)}'
               for k, v in value.items()]
    return '{\n' + ',\n'.join(members) + '\n' + _INDENT * depth + '}'
  if isinstance(value, list):
    if not value:
      return '[]'
    inner = _INDENT * (depth + 1)
    items = [inner + _pretty_value(v, depth + 1) for v in value]
    return '[\n' + ',\n'.join(items) + '\n' + _INDENT * depth + ']'
  if value is None:
    return 'null'
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    return _grisu_double(value)
  return rapidjson_string(value)


def json_value_to_string(value: Any) -> str:
  """json_tensor.cc's JsonValueToString, used to quote values in errors."""
  if isinstance(value, float):
    # rapidjson's IsFloat() is "a double within float range", so such a
    # number is quoted after rounding to float32.
    if -3.4028234e38 <= value <= 3.4028234e38:
      return write_decimal(float(np.float32(value)), single=True)
    return write_decimal(value, single=False)
  return _pretty_value(value, 0)


def json_type_string(value: Any) -> str:
  """rapidjson's name of a value's type, as TF Serving's messages quote it."""
  if value is None:
    return 'Null'
  if isinstance(value, bool):
    return 'True' if value else 'False'
  if isinstance(value, dict):
    return 'Object'
  if isinstance(value, list):
    return 'Array'
  if isinstance(value, str):
    return 'String'
  return 'Number'


class PrettyWriter:
  """rapidjson::PrettyWriter's layout rules, driven by the same call sequence.

  TF Serving toggles kFormatSingleLineArray while writing rows, and the exact
  placement of newlines depends on the format in force when each value starts
  and each array ends, so the writer replays rapidjson's state machine.
  """

  def __init__(self):
    self._out = []
    self._levels = []  # [in_array, value_count] per open container
    self.single_line = False

  def _prefix(self):
    if not self._levels:
      return
    level = self._levels[-1]
    if level[0]:
      if level[1] > 0:
        self._out.append(', ' if self.single_line else ',')
      if not self.single_line:
        self._out.append('\n' + _INDENT * len(self._levels))
    else:
      if level[1] == 0:
        self._out.append('\n')
      elif level[1] % 2 == 0:
        self._out.append(',\n')
      else:
        self._out.append(': ')
      if level[1] % 2 == 0:
        self._out.append(_INDENT * len(self._levels))
    level[1] += 1

  def raw(self, token: str):
    self._prefix()
    self._out.append(token)

  def key(self, name: str):
    self.raw(rapidjson_string(name))

  def start_array(self):
    self._prefix()
    self._levels.append([True, 0])
    self._out.append('[')

  def end_array(self):
    _, count = self._levels.pop()
    if count and not self.single_line:
      self._out.append('\n' + _INDENT * len(self._levels))
    self._out.append(']')

  def start_object(self):
    self._prefix()
    self._levels.append([False, 0])
    self._out.append('{')

  def end_object(self):
    _, count = self._levels.pop()
    if count:
      self._out.append('\n' + _INDENT * len(self._levels))
    self._out.append('}')

  def body(self) -> bytes:
    return encode_body(''.join(self._out))


def error_json(message: str) -> bytes:
  """The body TF Serving sends with any error: {"error": message}."""
  writer = PrettyWriter()
  writer.start_object()
  writer.key('error')
  writer.raw(rapidjson_string(message))
  writer.end_object()
  return writer.body()
