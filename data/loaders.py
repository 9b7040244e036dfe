"""Readers that turn the text formats users have into canonical records.

A canonical record is `text` with a sentiment `label` (one of `LABELS`),
a `topic` (one of `TOPICS`) or both, and the optional `source` and
`published_at`. Every reader is strict: a row it cannot read raises
`DataFormatError` naming the file and line, and no row is ever skipped, so
a run trains on exactly what the files hold or not at all.

Supported formats, detected from the file (see `detect_format`):

* `csv`: the canonical CSV, header `text` and `label` or `topic` or both,
  then `[,source][,published_at]` in any order; labels spelled
  `negative`/`neutral`/`positive`, topics by name; UTF-8. A row may leave
  one of `label` and `topic` empty, not both.
* `twitter_fns`: Twitter Financial News Sentiment, header `text,label`,
  labels `0` Bearish, `1` Bullish, `2` Neutral, UTF-8.
* `twitter_fn_topic`: Twitter Financial News Topic, header `text,label`,
  labels `0` Analyst Update to `19` Stock Movement (`TOPICS`), UTF-8.
* `jsonl`: one JSON object per line with the canonical keys, UTF-8.
* `phrasebank`: Financial PhraseBank, `sentence@label` per line, latin-1.

`read_texts` reads only the texts of a file of any of these formats, for
texts whose labels, if any, are not sentiment labels.
"""

import collections
import csv
import dataclasses
import glob
import datetime
import io
import json
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from finsent import configs
from finsent.configs.features import LABELS
from finsent.configs.features import TOPICS

# What a record is labelled with: at least one of the two.
LABEL_FIELDS = ('label', 'topic')
OPTIONAL_FIELDS = ('source', 'published_at')
CANONICAL_FIELDS = ('text',) + LABEL_FIELDS + OPTIONAL_FIELDS
TWITTER_FNS_LABELS = {'0': 'negative', '1': 'positive', '2': 'neutral'}
TWITTER_FN_TOPICS = {str(i): topic for i, topic in enumerate(TOPICS)}


class DataFormatError(ValueError):
  """A row or file that cannot be read as labelled text; says where."""

  def __init__(self, path: str, line: Optional[int], message: str):
    where = f'{path}:{line}' if line is not None else path
    super().__init__(f'{where}: {message}')
    self.path = path
    self.line = line


@dataclasses.dataclass(frozen=True)
class Record:
  """One text in the canonical form: a sentiment label, a topic or both."""
  text: str
  label: Optional[str] = None
  source: Optional[str] = None
  published_at: Optional[str] = None
  topic: Optional[str] = None


def _decode(path: str, raw: bytes, encoding: str) -> str:
  try:
    return raw.decode(encoding)
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b'\n') + 1
    raise DataFormatError(
        path, line, f'bytes {raw[e.start:e.end]!r} at offset {e.start} are '
        f'not valid {encoding}') from None


def _read_text(path: str, encoding: str = 'utf-8') -> str:
  if configs.is_uri(path):
    # Object storage on a cluster (gs://, s3://): TensorFlow's file systems,
    # imported only then (this module loads without TensorFlow).
    from tfx.dsl.io import fileio  # pylint: disable=g-import-not-at-top
    opener = fileio.open
  else:
    opener = open
  with opener(path, 'rb') as f:
    raw = f.read()
  if raw.startswith(b'\xef\xbb\xbf'):
    raw = raw[3:]
  return _decode(path, raw, encoding)


def _check_record(path: str, line: int, text, label=None, source=None,
                  published_at=None, topic=None) -> Record:
  """Validates one row's values and returns it as a Record; an empty
  label or topic counts as absent."""
  for name, value in (('text', text), ('label', label), ('topic', topic),
                      ('source', source), ('published_at', published_at)):
    if not isinstance(value, str) and (name == 'text' or value is not None):
      raise DataFormatError(path, line, f'{name} must be a string, got '
                            f'{type(value).__name__}')
  if not text.strip():
    raise DataFormatError(path, line, 'text is empty')
  label, topic = label or None, topic or None
  if label is None and topic is None:
    raise DataFormatError(path, line, 'the row has neither a label nor a '
                          'topic')
  if label is not None and label not in LABELS:
    raise DataFormatError(
        path, line, f'label {label!r} is not one of {", ".join(LABELS)}')
  if topic is not None and topic not in TOPICS:
    raise DataFormatError(
        path, line, f'topic {topic!r} is not one of the {len(TOPICS)} '
        f'topics: {"; ".join(TOPICS)}')
  if published_at:
    try:
      datetime.datetime.fromisoformat(published_at.replace('Z', '+00:00'))
    except ValueError:
      raise DataFormatError(
          path, line, f'published_at {published_at!r} is not an ISO-8601 '
          'timestamp') from None
  return Record(text=text, label=label, topic=topic,
                source=source or None, published_at=published_at or None)


def _csv_rows(path: str, content: str,
              required: Tuple[str, ...] = ('text', 'label'),
              known: Optional[Tuple[str, ...]] = CANONICAL_FIELDS,
              one_of: Tuple[str, ...] = ()):
  """Yields (line, header, row) for each data row, checking field counts.

  The header must have the `required` columns, at least one of `one_of`
  (if any), and no column outside `known` (None: any column).
  """
  reader = csv.reader(io.StringIO(content, newline=''), strict=True)
  header = None
  line = 1
  try:
    for row in reader:
      if header is None:
        header = [h.strip() for h in row]
        missing = [f for f in required if f not in header]
        if one_of and not set(one_of) & set(header):
          missing.append(' or '.join(one_of))
        if missing:
          raise DataFormatError(
              path, 1, f'header {",".join(header)!r} lacks column(s) '
              f'{", ".join(missing)}')
        unknown = [h for h in header
                   if known is not None and h not in known]
        if unknown:
          raise DataFormatError(
              path, 1, f'unknown column(s) {", ".join(unknown)}; expected '
              f'{", ".join(CANONICAL_FIELDS)}')
      elif row:
        if [field.strip() for field in row] == header:
          # Files concatenated with their headers, the usual cause.
          raise DataFormatError(path, line, 'the header row is repeated')
        if len(row) != len(header):
          raise DataFormatError(
              path, line, f'row has {len(row)} fields, header has '
              f'{len(header)}')
        yield line, header, row
      line = reader.line_num + 1
  except csv.Error as e:
    raise DataFormatError(path, line, f'malformed CSV: {e}') from None


def read_csv(path: str) -> Iterator[Record]:
  """Reads the canonical CSV format."""
  for line, header, row in _csv_rows(path, _read_text(path),
                                     required=('text',),
                                     one_of=LABEL_FIELDS):
    values = dict(zip(header, row))
    yield _check_record(path, line, values['text'], values.get('label'),
                        values.get('source'), values.get('published_at'),
                        values.get('topic'))


def _read_twitter(path: str, codes: Dict[str, str], field: str,
                  described: str) -> Iterator[Record]:
  """Reads a Twitter Financial News CSV (`text,label`, integer labels):
  each label's code looked up in `codes`, the value put in `field`."""
  for line, header, row in _csv_rows(path, _read_text(path)):
    values = dict(zip(header, row))
    code = values['label'].strip()
    if code not in codes:
      raise DataFormatError(path, line, f'label {code!r} is not {described}')
    yield _check_record(path, line, values['text'], **{field: codes[code]})


def read_twitter_fns(path: str) -> Iterator[Record]:
  """Reads Twitter Financial News Sentiment (0 Bearish, 1 Bullish, 2 Neutral)."""
  return _read_twitter(path, TWITTER_FNS_LABELS, 'label',
                       'a Twitter-FNS label (0 Bearish, 1 Bullish, 2 Neutral)')


def read_twitter_fn_topic(path: str) -> Iterator[Record]:
  """Reads Twitter Financial News Topic (0 Analyst Update ... 19 Stock
  Movement): each record has a topic and no sentiment label."""
  return _read_twitter(path, TWITTER_FN_TOPICS, 'topic',
                       'a Twitter Financial News Topic id (0 Analyst Update '
                       f'to {len(TOPICS) - 1} {TOPICS[-1]})')


def _lines(text: str) -> List[str]:
  """The file's lines: split at \\n (\\r\\n) only, not at the other
  separators str.splitlines() knows (U+2028 in a JSON string, NEL, the
  byte 0x85 in latin-1), which would cut a record in two."""
  return [line.rstrip('\r') for line in text.split('\n')]


def _json_objects(path: str) -> Iterator[Tuple[int, Dict]]:
  """Yields (line, object) for each non-blank line, one JSON object each."""
  for line, text in enumerate(_lines(_read_text(path)), start=1):
    if not text.strip():
      continue
    try:
      obj = json.loads(text)
    except json.JSONDecodeError as e:
      raise DataFormatError(path, line, f'invalid JSON: {e.msg}') from None
    if not isinstance(obj, dict):
      raise DataFormatError(path, line, 'expected a JSON object')
    yield line, obj


def read_jsonl(path: str) -> Iterator[Record]:
  """Reads one canonical JSON object per line."""
  for line, obj in _json_objects(path):
    unknown = sorted(set(obj) - set(CANONICAL_FIELDS))
    if unknown:
      raise DataFormatError(path, line, f'unknown field(s) {", ".join(unknown)}')
    if 'text' not in obj:
      raise DataFormatError(path, line, "missing field 'text'")
    if not set(LABEL_FIELDS) & set(obj):
      raise DataFormatError(path, line, "missing field 'label' or 'topic'")
    yield _check_record(path, line, obj['text'], obj.get('label'),
                        obj.get('source'), obj.get('published_at'),
                        obj.get('topic'))


def _phrasebank_rows(path: str) -> Iterator[Tuple[int, str, str]]:
  """Yields (line, sentence, label) for each non-blank line, both stripped;
  the label is what follows the last `@`."""
  for line, text in enumerate(_lines(_read_text(path, 'latin-1')), start=1):
    if not text.strip():
      continue
    sentence, sep, label = text.rpartition('@')
    if not sep:
      raise DataFormatError(path, line, "expected 'sentence@label'")
    yield line, sentence.strip(), label.strip()


def read_phrasebank(path: str) -> Iterator[Record]:
  """Reads Financial PhraseBank (`sentence@label`, latin-1)."""
  for line, sentence, label in _phrasebank_rows(path):
    yield _check_record(path, line, sentence, label)


READERS: Dict[str, Callable[[str], Iterator[Record]]] = {
    'csv': read_csv,
    'twitter_fns': read_twitter_fns,
    'twitter_fn_topic': read_twitter_fn_topic,
    'jsonl': read_jsonl,
    'phrasebank': read_phrasebank,
}
EXTENSIONS = ('.csv', '.jsonl', '.json', '.txt')


def _file_type(path: str) -> str:
  """`csv`, `jsonl` or `phrasebank`, from the extension of `path`."""
  ext = os.path.splitext(path)[1].lower()
  if ext in ('.jsonl', '.json'):
    return 'jsonl'
  if ext == '.txt':
    return 'phrasebank'
  if ext != '.csv':
    raise DataFormatError(
        path, None, f'unsupported file type {ext or "(none)"!r}; expected one '
        f'of {", ".join(EXTENSIONS)}')
  return 'csv'


def detect_format(path: str) -> str:
  """Names the format of `path` from its extension and, for CSV, its header
  and labels.

  A `text,label` CSV whose first label is an integer is one of the Twitter
  Financial News sets: the topic set when any of its labels is a topic id
  above the sentiment set's 0..2 (the topic set's 20 classes all occur in
  each of its splits), else the sentiment set, whose reader then names any
  label it does not know.
  """
  file_type = _file_type(path)
  if file_type != 'csv':
    return file_type
  rows = _csv_rows(path, _read_text(path), required=('text',),
                   one_of=LABEL_FIELDS)
  first = next(rows, None)
  if first is None:
    raise DataFormatError(path, None, 'no records')
  _, header, row = first
  if header != ['text', 'label'] or row[1].strip() not in TWITTER_FNS_LABELS:
    return 'csv'
  codes = {row[1].strip()} | {row[1].strip() for _, _, row in rows}
  if codes & (set(TWITTER_FN_TOPICS) - set(TWITTER_FNS_LABELS)):
    return 'twitter_fn_topic'
  return 'twitter_fns'


def read_records(path: str, data_format: Optional[str] = None
                 ) -> Iterator[Record]:
  """Reads every record of one file, in the given or the detected format."""
  data_format = data_format or detect_format(path)
  if data_format not in READERS:
    raise DataFormatError(path, None, f'unknown format {data_format!r}; '
                          f'expected one of {", ".join(READERS)}')
  empty = True
  for record in READERS[data_format](path):
    empty = False
    yield record
  if empty:
    raise DataFormatError(path, None, 'no records')


def _check_text(path: str, line: int, text) -> str:
  """Validates one row's text (as _check_record does) and returns it."""
  if not isinstance(text, str):
    raise DataFormatError(path, line, f'text must be a string, got '
                          f'{type(text).__name__}')
  if not text.strip():
    raise DataFormatError(path, line, 'text is empty')
  return text


def _texts(path: str) -> Iterator[Tuple[int, object]]:
  """(line, text) of each record of `path`, whatever else it holds."""
  file_type = _file_type(path)
  if file_type == 'csv':
    # Any other column is allowed and ignored: a Twitter-FNS *topic* file
    # (`text,label`, labels 0..19) must not be read as sentiment.
    for line, header, row in _csv_rows(path, _read_text(path),
                                       required=('text',), known=None):
      yield line, row[header.index('text')]
  elif file_type == 'jsonl':
    for line, obj in _json_objects(path):
      if 'text' not in obj:
        raise DataFormatError(path, line, "missing field 'text'")
      yield line, obj['text']
  else:
    for line, sentence, _ in _phrasebank_rows(path):
      yield line, sentence


def read_texts(path: str) -> Iterator[str]:
  """Reads the text of every record of one file of any supported format,
  never its labels.

  For texts whose labels, if any, are not sentiment labels (topics, or
  none): a CSV needs only a `text` column, any other column is ignored
  (the format is never detected: a Twitter-FNS topic file's labels 0..19
  are not read as sentiment); a JSON line needs only `text`; a PhraseBank
  line is `sentence@anything`. Otherwise as strict as `read_records`: a
  row without text, or a file without any, raises DataFormatError naming
  the file and line.
  """
  empty = True
  for line, text in _texts(path):
    empty = False
    yield _check_text(path, line, text)
  if empty:
    raise DataFormatError(path, None, 'no texts')


@dataclasses.dataclass(frozen=True)
class SplitCounts:
  """What one split's records carry: how many there are, how many of them
  have each sentiment label (every label, 0 included) and each topic (the
  topics present)."""
  records: int
  labels: Dict[str, int]
  topics: Dict[str, int]

  @property
  def without_label(self) -> int:
    """Records with a topic and no sentiment label."""
    return self.records - sum(self.labels.values())


def require_sentiment_labels(where: str, records: int,
                             without_label: int) -> None:
  """Raises DataFormatError, naming `where`, when `without_label` of the
  `records` read there have a topic but no sentiment label: sentiment is
  learned and judged on every record."""
  if without_label:
    raise DataFormatError(
        where, None, f'{without_label} of {records} records have a topic '
        'but no sentiment label; the models learn sentiment from every '
        'record, so each needs a label (negative, neutral or positive)')


@dataclasses.dataclass(frozen=True)
class InputLayout:
  """Where ExampleGen reads: a base folder and a file pattern per split.

  `splits` maps split name to a file pattern under `input_base`. One split
  named `all` means the data has no split of its own and ExampleGen
  hash-splits it. `ignored` names the files in a data folder that are in no
  split, so that they can be shown rather than skipped silently.
  """
  input_base: str
  splits: Dict[str, str]
  ignored: Tuple[str, ...] = ()

  @property
  def files(self) -> Dict[str, List[str]]:
    return {name: sorted(glob.glob(os.path.join(self.input_base, pattern)))
            for name, pattern in self.splits.items()}

  def counts(self) -> Dict[str, SplitCounts]:
    """Reads every record once: what each split holds. Raises on bad data."""
    counts = {}
    for split, paths in self.files.items():
      if not paths:
        raise DataFormatError(os.path.join(self.input_base, self.splits[split]),
                              None, 'no files match')
      records = [r for path in paths for r in read_records(path)]
      labels = collections.Counter(r.label for r in records)
      topics = collections.Counter(r.topic for r in records)
      counts[split] = SplitCounts(
          records=len(records),
          labels={label: labels[label] for label in LABELS},
          topics={topic: topics[topic] for topic in TOPICS if topics[topic]})
    return counts


_TRAIN_WORDS = ('train',)
_EVAL_WORDS = ('valid', 'eval', 'test', 'dev')


def resolve_input(path: str) -> InputLayout:
  """Lays out a data file or folder as ExampleGen input splits.

  A file is one split. In a folder, a file named like `*train*` and one named
  like `*valid*`/`*eval*`/`*test*`/`*dev*` become the train and eval splits
  (the Twitter-FNS layout) and any other file is listed as ignored;
  otherwise all its data files, of one type, are one split.
  """
  path = os.path.abspath(path)
  if os.path.isfile(path):
    return InputLayout(os.path.dirname(path), {'all': os.path.basename(path)})
  if not os.path.isdir(path):
    raise DataFormatError(path, None, 'no such file or folder')
  names = sorted(n for n in os.listdir(path)
                 if os.path.splitext(n)[1].lower() in EXTENSIONS and
                 os.path.isfile(os.path.join(path, n)))
  train = [n for n in names if any(w in n.lower() for w in _TRAIN_WORDS)]
  evals = [n for n in names if any(w in n.lower() for w in _EVAL_WORDS)]
  if train or evals:
    if len(train) != 1 or len(evals) != 1:
      raise DataFormatError(
          path, None, f'expected one train file and one eval file, found '
          f'train={train} eval={evals}')
    ignored = tuple(n for n in names if n not in (train[0], evals[0]))
    return InputLayout(path, {'train': train[0], 'eval': evals[0]}, ignored)
  exts = {os.path.splitext(n)[1].lower() for n in names}
  if len(exts) != 1:
    raise DataFormatError(
        path, None, f'expected data files of one type ({", ".join(EXTENSIONS)})'
        f', found {names or "none"}')
  return InputLayout(path, {'all': '*' + exts.pop()})


def single_split_layout(path: str, split: str, what: str) -> InputLayout:
  """Where an ExampleGen reads `path` as the one split `split`, whole
  (never hash-split); `what` names the input in errors.

  A local file, or a folder of files of one type (resolve_input). A folder
  laid out as a train file and an eval file is refused: which of them to
  read is for the user to say. In object storage (a compiled pipeline's
  gs:// path) it must name one file, since nothing lists the bucket before
  the run. Raises DataFormatError.
  """
  if configs.is_uri(path):
    name = path.rstrip('/').rsplit('/', 1)[-1]
    if os.path.splitext(name)[1].lower() not in EXTENSIONS:
      raise DataFormatError(
          path, None, f'{what} in object storage must be one file '
          f'({", ".join(EXTENSIONS)})')
    return InputLayout(path[:-len(name) - 1], {split: name})
  layout = resolve_input(path)
  if list(layout.splits) != ['all']:
    raise DataFormatError(
        layout.input_base, None, f'{what} is read as one split, but this '
        'folder is laid out as ' + ' and '.join(
            f'{name} ({pattern})' for name, pattern in layout.splits.items())
        + ': name the one file to read')
  return InputLayout(layout.input_base, {split: layout.splits['all']})
