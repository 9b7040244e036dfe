"""Knobs: config fields declared once, read as flags and from YAML files.

A knob is a dataclass field whose metadata says what it is for
(`knob(default, help=...)`). From that one declaration:

- `add_flags(parser, section)` adds a flag per knob of a config section,
  with the section's value as its default, so `finsent run`,
  `train-worker` and `compile-kubeflow` share names, types, choices and
  help; `Flags.read(args)` turns the parsed values back into the section;
- `load_file(path, defaults)` reads a saved set of knobs (`--config FILE`,
  YAML nested like the dataclasses) over the defaults, each value checked
  as its flag would check it, and `dump(config)` writes one;
- the TFX Tuner reads a knob's `search` range (models.tuner).

This module is the ground floor: it imports nothing of finsent, and
nothing that loads TensorFlow, so `finsent COMMAND --help` is fast.
"""

import argparse
import dataclasses
import difflib
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

_KNOB = 'finsent.knob'


@dataclasses.dataclass(frozen=True)
class Choice:
  """The Tuner picks one of `values`."""
  values: Tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class IntRange:
  """The Tuner picks a whole number from `low` to `high`, both included."""
  low: int
  high: int


@dataclasses.dataclass(frozen=True)
class FloatRange:
  """The Tuner picks a number from `low` to `high`, in `step`s, or on a
  log scale."""
  low: float
  high: float
  step: Optional[float] = None
  log: bool = False


@dataclasses.dataclass(frozen=True)
class Knob:
  """What a config field is for, as a flag and in a config file.

  help: the flag's help; `(default: ...)` is added.
  flag: the flag's name, when it is not the field's.
  parse: str -> value, raising argparse.ArgumentTypeError (flag_types);
    default: the field's type.
  choices: the values allowed.
  negated: a bool field that the flag turns off (`--skip_drift_check`
    sets `check_drift` False).
  search: the Tuner's range for it.
  cli: False for a knob set only in a config file.
  """
  help: str
  flag: Optional[str] = None
  parse: Optional[Callable[[str], Any]] = None
  choices: Optional[Tuple[Any, ...]] = None
  metavar: Optional[str] = None
  negated: bool = False
  search: Any = None
  cli: bool = True


def knob(default: Any, help: str, **kwargs) -> Any:  # pylint: disable=redefined-builtin
  """A dataclass field with its Knob (see Knob for the arguments)."""
  return dataclasses.field(default=default,
                           metadata={_KNOB: Knob(help=help, **kwargs)})


def knob_of(section_type: type, name: str) -> Knob:
  """The Knob of field `name` of a config dataclass."""
  for field in dataclasses.fields(section_type):
    if field.name == name:
      return field.metadata[_KNOB]
  raise KeyError(f'{section_type.__name__} has no field {name!r}')


class ConfigFileError(ValueError):
  """A config file finsent cannot use; the message says which key and why."""


def _field_type(section_type: type, field: dataclasses.Field) -> Any:
  return typing.get_type_hints(section_type)[field.name]


def _optional(hint: Any) -> Tuple[Any, bool]:
  """(the type inside Optional[...], whether it was Optional)."""
  if typing.get_origin(hint) is typing.Union:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1:
      return args[0], True
  return hint, False


def _parse_bool(value: str) -> bool:
  lowered = str(value).lower()
  if lowered in ('true', '1', 'yes'):
    return True
  if lowered in ('false', '0', 'no'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {value!r}')


def _scalar_parser(hint: Any, knob_: Optional[Knob]) -> Callable[[str], Any]:
  if knob_ is not None and knob_.parse is not None:
    return knob_.parse
  if hint is bool:
    return _parse_bool
  if hint in (int, float, str):
    return hint
  raise TypeError(f'no parser for a knob of type {hint}')


def _is_section(value: Any) -> bool:
  return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _with_default(help_text: str, default: Any) -> str:
  if ('%(default)' in help_text or '(default' in help_text or
      default is None or default is False):
    return help_text
  return f'{help_text} (default: %(default)s)'


class Flags:
  """The flags `add_flags` added for one config section."""

  def __init__(self, section: Any, dests: Dict[str, str]):
    self._section = section
    self._dests = dests  # field name -> argparse dest

  def read(self, args: argparse.Namespace, section: Any = None) -> Any:
    """The section (the one given to add_flags, or `section`) with the
    parsed flags' values."""
    section = self._section if section is None else section
    values = {}
    for name, dest in self._dests.items():
      value = getattr(args, dest)
      if isinstance(value, list):
        value = tuple(value)
      values[name] = value
    return dataclasses.replace(section, **values)


def add_flags(parser: Any, section: Any, *, prefix: str = '',
              only: Optional[Sequence[str]] = None,
              exclude: Sequence[str] = (),
              parse: Optional[Mapping[str, Callable[[str], Any]]] = None,
              help: Optional[Mapping[str, str]] = None,  # pylint: disable=redefined-builtin
              ) -> Flags:
  """Adds a `--<prefix><flag>` per knob of `section` (a config dataclass
  instance, whose values are the defaults) to `parser` (or an argument
  group). `only`/`exclude` pick knobs by field name; `parse` and `help`
  replace a knob's parser or help in this command (a check that needs
  library code, which this ground floor may not import)."""
  parse, help = dict(parse or {}), dict(help or {})
  dests = {}
  section_type = type(section)
  for field in dataclasses.fields(section_type):
    knob_ = field.metadata.get(_KNOB)
    if (knob_ is None or not knob_.cli or field.name in exclude or
        (only is not None and field.name not in only)):
      continue
    flag = prefix + (knob_.flag or field.name)
    default = getattr(section, field.name)
    hint, _ = _optional(_field_type(section_type, field))
    kwargs: Dict[str, Any] = {'dest': flag, 'default': default}
    help_text = help.get(field.name, knob_.help)
    if hint is bool:
      kwargs['action'] = 'store_false' if knob_.negated else 'store_true'
      kwargs['help'] = help_text
    else:
      kwargs['help'] = _with_default(help_text, default)
      if typing.get_origin(hint) is tuple:
        item_types = typing.get_args(hint)
        if Ellipsis in item_types or len(set(item_types)) != 1:
          raise TypeError(f'{section_type.__name__}.{field.name}: only '
                          'fixed-length tuples of one type are flags')
        kwargs['nargs'] = len(item_types)
        hint = item_types[0]
      kwargs['type'] = parse.get(field.name) or _scalar_parser(hint, knob_)
      if knob_.choices is not None:
        kwargs['choices'] = knob_.choices
      if knob_.metavar:
        kwargs['metavar'] = knob_.metavar
    parser.add_argument(f'--{flag}', **kwargs)
    dests[field.name] = flag
  return Flags(section, dests)


def add_config_flag(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      '--config', metavar='FILE',
      help='a YAML file of settings, nested like the config dataclasses '
      '(docs/configuration.md); flags given beside it win')


def preparse_config(argv: Optional[Sequence[str]]) -> Optional[str]:
  """The value of --config in `argv`, before the command's own parser
  (which takes its defaults from that file) is built."""
  parser = argparse.ArgumentParser(add_help=False)
  add_config_flag(parser)
  args, _ = parser.parse_known_args(argv)
  return args.config


def load_defaults(argv: Optional[Sequence[str]], defaults: Any) -> Any:
  """`defaults` with the settings of argv's --config file, if any;
  ConfigFileError says what is wrong with the file."""
  path = preparse_config(argv)
  return load_file(path, defaults) if path else defaults


def parser_with_config(argv: Optional[Sequence[str]], defaults: Any,
                       build_parser: Callable[[Any], argparse.ArgumentParser]
                       ) -> argparse.ArgumentParser:
  """`build_parser(defaults)`, the defaults read over by argv's --config
  file, so that flags given beside the file win; a bad file is the
  parser's error (exit 2, naming the file and the key)."""
  try:
    return build_parser(load_defaults(argv, defaults))
  except ConfigFileError as e:
    build_parser(defaults).error(f'--config: {e}')
    raise  # unreachable: error() exits


class _Loader(yaml.SafeLoader):
  """YAML without implicit timestamps: a time (`start:
  2026-03-02T00:00:00Z`) stays the text the knob parses."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag != 'tag:yaml.org,2002:timestamp']
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _check_value(value: Any, hint: Any, knob_: Optional[Knob], key: str
                 ) -> Any:
  """`value` from a YAML file as the field's type, checked as its flag
  checks it; ConfigFileError (without the file name) otherwise."""
  inner, optional = _optional(hint)
  if value is None:
    if optional:
      return None
    raise ConfigFileError(f'{key}: a value is required')
  origin = typing.get_origin(inner)
  if origin is tuple:
    items = typing.get_args(inner)
    if isinstance(value, Mapping) and items[:1] and typing.get_origin(
        items[0]) is tuple:
      value = list(value.items())  # NAME: PATTERN pairs as a mapping
    if not isinstance(value, (list, tuple)):
      raise ConfigFileError(f'{key}: expected a list, got {value!r}')
    if Ellipsis in items:
      return tuple(_check_value(v, items[0], None, f'{key}[{i}]')
                   for i, v in enumerate(value))
    if len(value) != len(items):
      raise ConfigFileError(f'{key}: expected {len(items)} values, got '
                            f'{len(value)}')
    return tuple(_check_value(v, t, knob_ if t in (int, float, str) else None,
                              f'{key}[{i}]')
                 for i, (v, t) in enumerate(zip(value, items)))
  if isinstance(value, (list, dict)):
    raise ConfigFileError(f'{key}: expected one value, got {value!r}')
  if inner is str and not isinstance(value, str):
    raise ConfigFileError(f'{key}: expected text, got {value!r}')
  if inner in (int, float) and isinstance(value, bool):
    raise ConfigFileError(f'{key}: expected a number, got {value!r}')
  try:
    parsed = _scalar_parser(inner, knob_)(str(value) if not isinstance(
        value, str) else value)
  except (argparse.ArgumentTypeError, ValueError) as e:
    raise ConfigFileError(f'{key}: {e}') from None
  if knob_ is not None and knob_.choices is not None and (
      parsed not in knob_.choices):
    raise ConfigFileError(f'{key}: {parsed!r} is not one of '
                          f'{", ".join(map(str, knob_.choices))}')
  return parsed


def _apply(section: Any, values: Any, key_prefix: str) -> Any:
  if not isinstance(values, Mapping):
    raise ConfigFileError(f'{key_prefix.rstrip(".") or "the file"}: '
                          f'expected a mapping of settings, got {values!r}')
  section_type = type(section)
  fields = {f.name: f for f in dataclasses.fields(section_type)}
  replaced = {}
  for name, value in values.items():
    key = f'{key_prefix}{name}'
    field = fields.get(name)
    if field is None:
      close = difflib.get_close_matches(str(name), fields, n=1)
      hint = f'; did you mean {key_prefix}{close[0]}?' if close else ''
      raise ConfigFileError(f'{key}: not a setting{hint} (settings here: '
                            f'{", ".join(fields)})')
    current = getattr(section, name)
    if _is_section(current):
      replaced[name] = _apply(current, value, f'{key}.')
    else:
      replaced[name] = _check_value(value, _field_type(section_type, field),
                                    field.metadata.get(_KNOB), key)
  return dataclasses.replace(section, **replaced)


def load_file(path: str, defaults: Any) -> Any:
  """`defaults` (a config dataclass instance) with the settings of the
  YAML file at `path`; ConfigFileError names the file and the key."""
  try:
    with open(path, encoding='utf-8') as f:
      values = yaml.load(f, Loader=_Loader)  # nosec: a SafeLoader
  except OSError as e:
    raise ConfigFileError(f'{path}: cannot read it: {e.strerror}') from None
  except yaml.YAMLError as e:
    raise ConfigFileError(f'{path}: not YAML: {e}') from None
  if values is None:
    return defaults
  try:
    return _apply(defaults, values, '')
  except ConfigFileError as e:
    raise ConfigFileError(f'{path}: {e}') from None


def as_dict(config: Any) -> Dict[str, Any]:
  """The config as plain YAML-able values (tuples as lists)."""
  def plain(value):
    if isinstance(value, tuple):
      return [plain(v) for v in value]
    return value
  result = {}
  for field in dataclasses.fields(type(config)):
    value = getattr(config, field.name)
    result[field.name] = as_dict(value) if _is_section(value) else plain(value)
  return result


def dump(config: Any) -> str:
  """The config as a YAML file that load_file reads back to it."""
  return yaml.safe_dump(as_dict(config), sort_keys=False)


def knobs(section_type: type) -> List[Tuple[str, Knob]]:
  """(field name, Knob) of a config dataclass, in declaration order."""
  return [(f.name, f.metadata[_KNOB]) for f in dataclasses.fields(section_type)
          if _KNOB in f.metadata]
