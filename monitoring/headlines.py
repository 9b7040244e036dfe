"""Headlines in, as the monitoring job reads them: parsing and its dead letters.

A headline file is JSONL (one object per line) or CSV with a header; both
have `text` and `published_at` (ISO-8601 with a timezone) and may have `id`
and `source`. Other fields (a replay's `label`, say) travel along untouched
in `extra`. A line that cannot be read becomes a dead letter naming
file:line and the reason: nothing is dropped silently.

  headlines, dead_letters = (
      pipeline | beam.Create([path]) | ReadHeadlines())
"""

import csv
import dataclasses
import datetime
import io
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io import fileio

DEAD_LETTERS = 'dead_letters'
HEADLINE_FIELDS = ('id', 'text', 'published_at', 'source')
EXTENSIONS = ('.jsonl', '.json', '.csv')


class HeadlineError(ValueError):
  """A record that is not a headline; the message says why."""


@dataclasses.dataclass(frozen=True)
class Headline:
  """One headline; `timestamp` is `published_at` in Unix seconds (event
  time) and `where` is file:line."""
  id: str
  text: str
  published_at: str
  timestamp: float
  where: str
  source: Optional[str] = None
  extra: Tuple[Tuple[str, Any], ...] = ()

  def to_dict(self) -> Dict[str, Any]:
    return {'id': self.id, 'text': self.text,
            'published_at': self.published_at, 'source': self.source,
            **dict(self.extra)}


@dataclasses.dataclass(frozen=True)
class DeadLetter:
  """What could not be read, scored or delivered, and why."""
  stage: str  # parse | late | score | webhook
  where: str
  record: Any
  reason: str

  @property
  def id(self) -> str:
    return f'{self.stage}/{self.where}'

  def to_dict(self) -> Dict[str, Any]:
    return {'id': self.id, **dataclasses.asdict(self)}


def parse_time(value: Any) -> datetime.datetime:
  """An ISO-8601 time with a timezone ('Z' included), as an aware datetime."""
  if not isinstance(value, str) or not value.strip():
    raise HeadlineError(f'published_at must be an ISO-8601 time, got '
                        f'{value!r}')
  try:
    parsed = datetime.datetime.fromisoformat(value.strip().replace('Z', '+00:00'))
  except ValueError:
    raise HeadlineError(f'published_at {value!r} is not an ISO-8601 time') \
        from None
  if parsed.tzinfo is None:
    raise HeadlineError(f'published_at {value!r} has no timezone (add Z or '
                        '+00:00)')
  return parsed


def format_time(timestamp: float) -> str:
  """Unix seconds as ISO-8601 UTC with a 'Z', whole seconds when whole."""
  moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
  spec = 'seconds' if moment.microsecond == 0 else 'microseconds'
  return moment.isoformat(timespec=spec).replace('+00:00', 'Z')


def headline_from_fields(fields: Dict[str, Any], where: str) -> Headline:
  """Checks one record's fields; raises HeadlineError saying what is wrong."""
  text = fields.get('text')
  if not isinstance(text, str) or not text.strip():
    raise HeadlineError(f'text must be a non-empty string, got {text!r}')
  published = parse_time(fields.get('published_at'))
  for name in ('id', 'source'):
    value = fields.get(name)
    if value is not None and not isinstance(value, (str, int)):
      raise HeadlineError(f'{name} must be a string, got {value!r}')
  headline_id = fields.get('id')
  return Headline(
      id=str(headline_id) if headline_id not in (None, '') else where,
      text=text.strip(), published_at=fields['published_at'].strip(),
      timestamp=published.timestamp(), where=where,
      source=str(fields['source']) if fields.get('source') else None,
      extra=tuple(sorted((k, v) for k, v in fields.items()
                         if k not in HEADLINE_FIELDS)))


def read_headline_file(path: str, stream: io.BufferedIOBase
                       ) -> Iterator[Any]:
  """Headlines of one file, and a DeadLetter for each line that is not one."""
  name = os.path.basename(path)
  ext = os.path.splitext(path)[1].lower()
  if ext not in EXTENSIONS:
    yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
        'parse', path, None, f'unsupported file type {ext or "(none)"!r}; '
        f'expected one of {", ".join(EXTENSIONS)}'))
    return
  text = io.TextIOWrapper(stream, encoding='utf-8', newline='')
  if ext == '.csv':
    rows = csv.reader(text)
    header = None
    for row in rows:
      where = f'{name}:{rows.line_num}'
      if header is None:
        header = [h.strip() for h in row]
        missing = {'text', 'published_at'} - set(header)
        if missing:
          yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
              'parse', where, ','.join(row),
              f'the CSV header lacks {", ".join(sorted(missing))}; no line '
              'of the file was read'))
          return
      elif len(row) != len(header):
        yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
            'parse', where, ','.join(row),
            f'{len(row)} fields, the header has {len(header)}'))
      else:
        yield _headline_or_dead_letter(dict(zip(header, row)), where,
                                       ','.join(row))
  else:
    for line, raw in enumerate(text, start=1):
      if raw.strip():
        yield parse_json_line(raw.rstrip('\n'), f'{name}:{line}')


def parse_json_line(raw: str, where: str) -> Any:
  """One JSON headline (a JSONL line, a Pub/Sub or Kafka message) -> a
  Headline, or a dead letter tagged DEAD_LETTERS."""
  try:
    fields = json.loads(raw)
  except json.JSONDecodeError as e:
    return beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
        'parse', where, raw, f'not JSON: {e}'))
  return _headline_or_dead_letter(fields, where, raw)


def _headline_or_dead_letter(fields: Any, where: str, raw: str) -> Any:
  try:
    if not isinstance(fields, dict):
      raise HeadlineError(
          f'expected a JSON object, got {type(fields).__name__}')
    return headline_from_fields(fields, where)
  except HeadlineError as e:
    return beam.pvalue.TaggedOutput(DEAD_LETTERS,
                                    DeadLetter('parse', where, raw, str(e)))


class ParseHeadlineFile(beam.DoFn):
  """A matched file (fileio.ReadableFile) -> its Headlines, and dead letters
  tagged DEAD_LETTERS."""

  def process(self, readable: fileio.ReadableFile):
    path = readable.metadata.path
    try:
      with readable.open(compression_type='uncompressed') as stream:
        yield from read_headline_file(path, stream)
    except UnicodeDecodeError as e:
      yield beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
          'parse', path, None, f'not UTF-8 ({e}); the lines before it were '
          'read'))


class ParseHeadlineFiles(beam.PTransform):
  """File paths (or matched files' metadata) -> Headlines, with the
  unreadable lines tagged `DEAD_LETTERS`. A path is opened as it is, not
  matched: Beam's patterns have no quoting, and a name holding `[` would
  match nothing."""

  def expand(self, files):
    return (files
            | 'Open' >> fileio.ReadMatches()
            | 'Parse' >> beam.ParDo(ParseHeadlineFile()).with_outputs(
                DEAD_LETTERS, main='headlines'))


class ReadHeadlines(beam.PTransform):
  """File patterns -> Headlines, with the unreadable lines tagged
  `DEAD_LETTERS`."""

  def expand(self, patterns):
    return (patterns
            | 'Match' >> fileio.MatchAll()
            | 'Files' >> ParseHeadlineFiles())


def input_patterns(inputs: Sequence[str]) -> List[str]:
  """Files, globs and directories (all their files) as file patterns."""
  return [os.path.join(os.path.abspath(p), '*') if os.path.isdir(p)
          else os.path.abspath(p) for p in inputs]
