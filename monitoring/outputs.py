"""The monitoring job's output files, and how to read them.

Every record has an id that names what it is about (a window: key and
window end; an alert: the same; a dead letter: stage and file:line), and
the JSONL files are changelogs keyed by it: a record appended later
replaces one with the same id (a late pane, an alert judged again, the
same input read again), and a record `"retracted": true` removes its id
(an alert a late update took back). `compact_jsonl` rewrites a file with
one record per id, the last one, sorted; `read_changelog` reads one either
way. So a job run twice on the same input, or restarted, leaves the same
files.
"""

import json
import os
from typing import Any, Callable, Dict, List, Tuple

import pyarrow as pa
from pyarrow import parquet

WINDOWS_FILE = 'windows.jsonl'
# The compacted windows again, as a Parquet table for dataframe and SQL
# tools (monitoring.windows's record; WINDOW_SCHEMA).
WINDOWS_PARQUET_FILE = 'windows.parquet'
ALERTS_FILE = 'alerts.jsonl'
DEAD_LETTERS_FILE = 'dead_letters.jsonl'
SUMMARY_FILE = 'summary.json'
# A watched directory's state (monitoring/watch.py): the files read, and
# every headline scored.
FILES_READ_FILE = 'files_read.jsonl'
SCORED_FILE = 'scored.jsonl'
# Each changelog: its id field and its order once compacted.
CHANGELOGS = {
    WINDOWS_FILE: ('id', lambda r: (r['window_end'], r['key'])),
    ALERTS_FILE: ('alert_id', lambda r: (r['window_end'], r['key'])),
    DEAD_LETTERS_FILE: ('id', lambda r: r['id']),
}
# The key of the whole market's windows (tickers are 1-5 capital letters).
MARKET = '*'
# A topic's windows (a model with a topic head): 'topic:Fed | Central Banks'.
TOPIC_KEY_PREFIX = 'topic:'


def topic_key(topic: str) -> str:
  """The window key of the headlines the model gave `topic`."""
  return TOPIC_KEY_PREFIX + topic


def is_topic_key(key: str) -> bool:
  return key.startswith(TOPIC_KEY_PREFIX)


WINDOW_SCHEMA = pa.schema([
    ('id', pa.string()), ('key', pa.string()),
    ('window_start', pa.string()), ('window_end', pa.string()),
    ('count', pa.int64()), ('negative', pa.int64()),
    ('neutral', pa.int64()), ('positive', pa.int64()),
    ('share_negative', pa.float64()), ('share_positive', pa.float64()),
    ('mean_score', pa.float64()),
    ('pane', pa.string()), ('pane_index', pa.int64()),
])


class ChangelogError(ValueError):
  """A line of an output file that is not a record; says file:line."""


def read_jsonl(path: str, offset: int = 0
               ) -> List[Tuple[str, Dict[str, Any]]]:
  """(file:line, object) for each non-blank line of `path`; from byte
  `offset` on, lines are counted from there (file:+line after byte N)."""
  records = []
  with open(path, 'rb') as f:
    f.seek(offset)
    for number, raw in enumerate(f, start=1):
      where = (f'{path}:{number}' if not offset else
               f'{path}:+{number} after byte {offset}')
      try:
        line = raw.decode('utf-8')
      except UnicodeDecodeError as e:
        raise ChangelogError(f'{where}: not UTF-8 ({e.reason})') from None
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        # Only a crash in the middle of a write leaves a torn line.
        raise ChangelogError(f'{where}: not valid JSON ({e.msg} at column '
                             f'{e.colno})') from None
      if not isinstance(record, dict):
        raise ChangelogError(f'{where}: a JSON object expected, got '
                             f'{type(record).__name__}')
      records.append((where, record))
  return records


def read_changelog(path: str, id_field: str
                   ) -> Dict[str, Tuple[str, Dict[str, Any]]]:
  """id -> (file:line, the last record with that id), in the order ids
  first appeared, less the ids whose last record is a retraction; {} when
  there is no file."""
  records: Dict[str, Tuple[str, Dict[str, Any]]] = {}
  if not os.path.exists(path):
    return records
  for where, record in read_jsonl(path):
    if not isinstance(record.get(id_field), str):
      raise ChangelogError(f'{where}: no {id_field!r}')
    records[record[id_field]] = (where, record)
  return {record_id: entry for record_id, entry in records.items()
          if entry[1].get('retracted') is not True}


def compact_jsonl(path: str, id_field: str,
                  sort_key: Callable[[Dict[str, Any]], Any]) -> int:
  """Rewrites `path` (atomically) with the last record of each id, sorted;
  returns how many records it holds."""
  records = sorted((record for _, record in
                    read_changelog(path, id_field).values()), key=sort_key)
  temporary = f'{path}.compacting'
  with open(temporary, 'w', encoding='utf-8') as f:
    for record in records:
      f.write(json.dumps(record, ensure_ascii=False) + '\n')
  os.replace(temporary, path)
  return len(records)


def write_windows_parquet(jsonl_path: str, parquet_path: str) -> int:
  """Writes the window records of a compacted `jsonl_path` to
  `parquet_path` (atomically, WINDOW_SCHEMA); returns how many."""
  rows = read_jsonl(jsonl_path)
  for where, record in rows:
    missing = [name for name in WINDOW_SCHEMA.names if name not in record]
    if missing:
      raise ChangelogError(f'{where}: a window record without {missing}')
  temporary = f'{parquet_path}.writing'
  parquet.write_table(pa.Table.from_pylist([record for _, record in rows],
                                           schema=WINDOW_SCHEMA), temporary)
  os.replace(temporary, parquet_path)
  return len(rows)
