"""REST request bodies read the way TF Serving reads them (json_tensor.cc).

Bodies are parsed with the stdlib json module, which accepts the
NaN/Infinity tokens TF Serving accepts (orjson does not); a body that does
not parse is refused with rapidjson's message and byte offset, as TF
Serving refuses it. The helpers after the parser read what every request
body shares: the object itself, its signature name, strings as UTF-8
bytes and {"b64": ...} objects.
"""

import base64
import json
import math
import re
from typing import Any, Dict

from finsent.serving.server.errors import RestRequestError
from finsent.serving.server.rest_json.rapidjson_writer import encode_body
from finsent.serving.server.rest_json.rapidjson_writer import json_value_to_string

# rapidjson keeps JSON integers in int64 or uint64 range as integers; the
# dtype checks (predict_classify) need all four ranges.
INT32_RANGE = (-2**31, 2**31 - 1)
UINT32_RANGE = (0, 2**32 - 1)
INT64_RANGE = (-2**63, 2**63 - 1)
UINT64_RANGE = (0, 2**64 - 1)

# Python's json messages (by prefix: some append the offending character) ->
# rapidjson's (rapidjson/error/en.h). Python's ',' message does not say which
# container is open; _parse_json resolves that one.
_PARSE_ERRORS = (
    ('Expecting value', 'Invalid value.'),
    ('Extra data', 'The document root must not be followed by other values.'),
    ('Expecting property name', 'Missing a name for object member.'),
    ("Expecting ':'", 'Missing a colon after a name of object member.'),
    ('Unterminated string', 'Missing a closing quotation mark in string.'),
    ('Invalid control character', 'Invalid encoding in string.'),
    ('Invalid \\uXXXX', 'Incorrect hex digit after \\u escape in string.'),
    ('Invalid \\escape', 'Invalid escape character in string.'),
)


class _NumberTooBig(Exception):
  """A JSON number beyond double range, which rapidjson rejects."""

  def __init__(self, literal: str):
    super().__init__(literal)
    self.literal = literal


def _parse_int(literal: str):
  # rapidjson keeps integers in [-2^63, 2^64) as integers and turns larger
  # ones into doubles; the dtype checks (predict_classify) depend on that
  # distinction.
  try:
    value = int(literal)
    if INT64_RANGE[0] <= value <= UINT64_RANGE[1]:
      return value
    return float(value)
  except (ValueError, OverflowError):  # over 4300 digits / beyond double
    raise _NumberTooBig(literal) from None


def _parse_float(literal: str) -> float:
  value = float(literal)
  if math.isinf(value):
    raise _NumberTooBig(literal)
  return value


def _innermost_container(text: str) -> str:
  """'[' or '{': the container still open at the end of `text`."""
  stack = []
  in_string = escaped = False
  for char in text:
    if in_string:
      if escaped:
        escaped = False
      elif char == '\\':
        escaped = True
      elif char == '"':
        in_string = False
    elif char == '"':
      in_string = True
    elif char in '[{':
      stack.append(char)
    elif char in ']}' and stack:
      stack.pop()
  return stack[-1] if stack else ''


# Deeper bodies are refused before anything recurses into them: a tensor
# has at most 254 dimensions (TensorShape's limit) plus the JSON objects
# around it, and Python's recursion limit (1000) is then never reached.
_MAX_DEPTH = 300


def _depth(value: Any) -> int:
  """How deeply lists and objects nest in `value` (without recursion)."""
  deepest, stack = 0, [(value, 1)]
  while stack:
    value, depth = stack.pop()
    if isinstance(value, (list, dict)):
      deepest = max(deepest, depth)
      if depth > _MAX_DEPTH:
        break
      children = value.values() if isinstance(value, dict) else value
      stack.extend((child, depth + 1) for child in children)
  return deepest


def _parse_json(body: bytes) -> Any:
  """Parses a request body as TF Serving's ParseJson does (NaN/Infinity ok)."""
  if not body:
    raise RestRequestError('JSON Parse error: The document is empty')
  # Invalid UTF-8 is passed through (rapidjson does not validate encoding).
  text = body.decode('utf-8', 'surrogateescape')
  bom = 3 if text.startswith('\ufeff') else 0  # rapidjson skips a BOM
  text = text[1:] if bom else text

  def offset(position: int) -> int:
    return bom + len(encode_body(text[:position]))

  if not text.strip(' \t\n\r'):
    raise RestRequestError('JSON Parse error: The document is empty. '
                           f'at offset: {offset(len(text))}')
  too_deep = RestRequestError(
      f'JSON Parse error: nesting deeper than {_MAX_DEPTH} levels')
  try:
    document = json.loads(text, parse_int=_parse_int,
                          parse_float=_parse_float)
  except RecursionError:
    raise too_deep from None
  except _NumberTooBig as e:
    raise RestRequestError(
        'JSON Parse error: Number too big to be stored in double. '
        f'at offset: {offset(max(text.find(e.literal), 0))}') from None
  except json.JSONDecodeError as e:
    if e.msg == "Expecting ',' delimiter":
      if _innermost_container(text[:e.pos]) == '{':
        message = "Missing a comma or '}' after an object member."
      else:
        message = "Missing a comma or ']' after an array element."
    else:
      message = next((rapidjson for prefix, rapidjson in _PARSE_ERRORS
                      if e.msg.startswith(prefix)), e.msg + '.')
    position = len(text) if e.msg.startswith('Unterminated') else e.pos
    raise RestRequestError(
        f'JSON Parse error: {message} at offset: {offset(position)}') from None
  if _depth(document) > _MAX_DEPTH:
    raise too_deep
  return document


def format_error(value: Any, *parts: str) -> RestRequestError:
  """TF Serving's "JSON Value: <value> <problem>" refusal."""
  return RestRequestError(
      f'JSON Value: {json_value_to_string(value)} ' + ''.join(parts))


def parse_object(body: bytes) -> Dict[str, Any]:
  """The request body, which must be a JSON object."""
  document = _parse_json(body)
  if not isinstance(document, dict):
    raise format_error(document, 'Is not object')
  return document


def parse_signature_name(document: Dict[str, Any]) -> str:
  """The body's "signature_name", '' when absent."""
  name = document.get('signature_name', '')
  if not isinstance(name, str):
    raise format_error(
        document,
        "not formatted correctly. 'signature_name' key must be a string value.")
  return name


def utf8(text: str) -> bytes:
  """A JSON string as the bytes a string tensor or feature holds."""
  try:
    return encode_body(text)
  except UnicodeEncodeError:  # a lone \uD800-style escape
    raise RestRequestError(
        'JSON Parse error: The surrogate pair in string is invalid.') from None


def is_base64_object(value: Any) -> bool:
  """Whether `value` is {"b64": "..."}, TF Serving's binary string."""
  return (isinstance(value, dict) and len(value) == 1 and
          isinstance(value.get('b64'), str))


_ABSL_SPACE = re.compile('[ \t\n\v\f\r]')
_BASE64_BODY = re.compile('([A-Za-z0-9+/]*)([=.]*)')


def decode_base64_object(value: Any) -> bytes:
  """Decodes {"b64": ...} with absl::Base64Unescape's leniency.

  absl skips ASCII whitespace, and accepts either no padding or exactly the
  right padding ('=' or '.'); anything outside the standard alphabet fails.

  Args:
    value: the JSON value that should be a base64 object.

  Returns:
    The decoded bytes.

  Raises:
    RestRequestError: with TF Serving's message for a malformed object or
      undecodable data.
  """
  if not is_base64_object(value):
    raise format_error(value, 'not formatted correctly for base64 data')
  match = _BASE64_BODY.fullmatch(_ABSL_SPACE.sub('', value['b64']))
  if match:
    data, padding = match.groups()
    expected_padding = {0: 0, 2: 2, 3: 1}.get(len(data) % 4)
    if expected_padding is not None and len(padding) in (0, expected_padding):
      return base64.b64decode(data + '=' * expected_padding)
  raise RestRequestError('Unable to base64 decode')
