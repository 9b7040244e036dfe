"""`finsent monitor --watch`: a watched directory as a stream, in polls.

  finsent monitor --input feed/ --watch --output monitor/ --saved_model DIR

Every `--file_system_poll_wait_seconds` the job looks for new files under
`--input` (only names ending .jsonl, .json or .csv: write a file under
another name, or elsewhere, and rename it into place) and runs until
Ctrl-C (SIGINT) or SIGTERM: it then finishes the poll in progress, writes
the windows still open (as Beam's drain fires them), compacts its outputs
and prints its summary.

Why polls and not Beam's `fileio.MatchContinuously`: the local DirectRunner
cannot run it as a stream. The FnApiRunner runs a pipeline stage by stage,
so a job fed by PeriodicImpulse writes nothing until its source stops, and
the BundleBasedDirectRunner, the one that streams, fails to expand
PeriodicImpulse's splittable DoFn ("...ProcessKeyedElements/GroupByKey
... was not replaced as expected", Beam 2.60). So each poll that finds new
files runs two bounded Beam jobs:

1. the new files only: read, checked and scored; the scored headlines are
   appended to `scored.jsonl`, then the files to `files_read.jsonl`;
2. windows and shocks (the batch job's transforms) over the scored
   headlines that the windows this poll changes need, read back from
   `scored.jsonl`: nothing is read or scored twice.

Event time: the watermark is the newest `published_at` scored so far. A
window is written once the watermark passes its end (pane ON_TIME), and
again each time headlines that arrive later change it (pane LATE, counted
by pane_index), until the watermark is past its end by more than
`--allowed_lateness_seconds`; a headline all of whose windows are past that
is a dead letter (stage `late`). An alert that a late update takes back is
retracted: a record `{"alert_id": ..., "retracted": true}`, which
compaction applies.

Restart: `files_read.jsonl` holds the files read, which are not read again;
`scored.jsonl` holds every headline scored, from which the open windows
and the baselines are computed again, so nothing is lost (each poll reads
it whole: a cost that grows with the stream). A job stopped after scoring
a file but before recording it reads that file again: its headlines keep
their ids, and `read_scored` and the changelogs keep one record per id; a
half-written last line is cut when the job starts.
"""

import datetime
import glob
import json
import os
import stat
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Set

import apache_beam as beam

from finsent.monitoring import metrics
from finsent.monitoring import stages
from finsent.monitoring.headlines import DEAD_LETTERS
from finsent.monitoring.headlines import DeadLetter
from finsent.monitoring.headlines import EXTENSIONS
from finsent.monitoring.headlines import format_time
from finsent.monitoring.headlines import input_patterns
from finsent.monitoring.headlines import parse_time
from finsent.monitoring.headlines import ParseHeadlineFiles
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import CHANGELOGS
from finsent.monitoring.outputs import FILES_READ_FILE
from finsent.monitoring.outputs import read_changelog
from finsent.monitoring.outputs import read_jsonl
from finsent.monitoring.outputs import SCORED_FILE
from finsent.monitoring.outputs import WINDOWS_FILE
from finsent.monitoring.scoring import ScoredHeadline
from finsent.monitoring.shocks import retraction
from finsent.monitoring.sinks import AppendJsonl
from finsent.monitoring.windows import by_key
from finsent.monitoring.windows import slot_start
from finsent.monitoring.windows import window_starts
from finsent import configs


class FileLedger:
  """`files_read.jsonl`: the files a watch has read, one record each, with
  the watermark after the poll that read them; written when the poll's
  outputs are."""

  def __init__(self, output_dir: str):
    self._path = os.path.join(output_dir, FILES_READ_FILE)
    records = [record for _, record in read_jsonl(self._path)] \
        if os.path.exists(self._path) else []
    self._read = {record['path'] for record in records}
    self._bytes: Dict[str, int] = {}  # as listed
    last = records[-1]['watermark'] if records else None
    self.watermark: Optional[float] = (
        parse_time(last).timestamp() if last else None)

  def new_files(self, patterns: List[str]) -> List[str]:
    """Headline files matching `patterns` not read yet, oldest first. A
    file is known by its path: one replaced under the same name is not
    read again."""
    listed = {path for pattern in patterns for path in glob.glob(pattern)
              if os.path.splitext(path)[1].lower() in EXTENSIONS}
    found = []
    for path in listed - self._read:
      try:
        status = os.stat(path)
      except FileNotFoundError:  # gone since it was listed
        continue
      if stat.S_ISREG(status.st_mode):
        found.append((status.st_mtime, path))
        self._bytes[path] = status.st_size
    return [path for _, path in sorted(found)]

  def record(self, paths: List[str], watermark: Optional[float]) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    mark = None if watermark is None else format_time(watermark)
    with open(self._path, 'a', encoding='utf-8') as f:
      for path in paths:
        f.write(json.dumps({'path': path, 'bytes': self._bytes.pop(path),
                            'read_at': now, 'watermark': mark}) + '\n')
      f.flush()
      os.fsync(f.fileno())
    self._read.update(paths)
    self.watermark = watermark


def read_scored(path: str, since: float = float('-inf'),
                offset: int = 0) -> List[ScoredHeadline]:
  """The scored headlines in `path` from byte `offset` on, published at or
  after `since`: one per id (the last), in the order first scored."""
  if not os.path.exists(path):
    return []
  records = {r['id']: r for _, r in read_jsonl(path, offset)}
  return [ScoredHeadline.from_record(r) for r in records.values()
          if r['headline']['timestamp'] >= since]


def too_late(headline, expired_before: Optional[float], window_seconds: int,
             period_seconds: int):
  """The headline, or a `late` dead letter when all its windows ended
  before `expired_before` (the watermark less the allowed lateness)."""
  if expired_before is None:
    return headline
  slot = slot_start(headline.timestamp, period_seconds)
  if slot + window_seconds >= expired_before:
    return headline
  metrics.HEADLINES.labels('dead_letter').inc()
  metrics.DEAD_LETTERS.labels('late').inc()
  return beam.pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
      'late', headline.where, headline.to_dict(),
      f'published {headline.published_at}: its last window ended '
      f'{format_time(slot + window_seconds)}, more than the allowed lateness '
      f'before the watermark'))


class _Poll:
  """Which windows one poll judges and writes, and as which pane (module
  docstring).

  Windows starting before `history_from` miss headlines here; those
  starting before `judge_from` neither change nor close in this poll.
  `watermark_before`/`watermark`: before and after the poll. `late_panes`:
  window id -> pane index, for the closed windows that late headlines
  change.
  """

  def __init__(self, history_from: float, judge_from: float,
               watermark_before: Optional[float], watermark: float,
               drain: bool, late_panes: Dict[str, int]):
    self.history_from = history_from
    self.judge_from = judge_from
    self.watermark_before = watermark_before
    self.watermark = watermark
    self.drain = drain
    self.late_panes = late_panes

  def closed(self, record: Dict[str, Any]) -> bool:
    """Whole here, and closed (or drained): may be judged."""
    start, end = _start_and_end(record)
    return start >= self.history_from and (end <= self.watermark or
                                           self.drain)

  def with_pane(self, record: Dict[str, Any]) -> Dict[str, Any]:
    if record['id'] in self.late_panes:
      return {**record, 'pane': 'LATE',
              'pane_index': self.late_panes[record['id']]}
    return record

  def writes(self, window_id: str, record: Dict[str, Any]) -> bool:
    """Closes in this poll, or late headlines changed it."""
    start, end = _start_and_end(record)
    return start >= self.judge_from and (
        window_id in self.late_panes or self.watermark_before is None or
        end > self.watermark_before)


def _start_and_end(record: Dict[str, Any]):
  return (parse_time(record['window_start']).timestamp(),
          parse_time(record['window_end']).timestamp())


class Watch:
  """Polls `inputs` (directories or globs) and runs each poll's two Beam
  jobs (module docstring), writing into `output_dir` and POSTing alerts to
  `webhook_url` (if any); `config`, `model_handler` and `extract_tickers`
  as `monitoring.job.run` makes them."""

  def __init__(self, inputs: Sequence[str], output_dir: str,
               webhook_url: Optional[str], config: configs.MonitorConfig,
               model_handler, extract_tickers, options):
    self._output_dir = output_dir
    self._webhook_url = webhook_url
    self._config = config
    self._model_handler = model_handler
    self._extract_tickers = extract_tickers
    self._options = options
    self._patterns = input_patterns(inputs)
    self._store = os.path.join(output_dir, SCORED_FILE)
    # A poll stopped in the middle of a write is not in the ledger, so it
    # runs again; the half line it left would break every later read.
    for name in (FILES_READ_FILE, SCORED_FILE, *CHANGELOGS):
      cut = cut_torn_tail(os.path.join(output_dir, name))
      if cut:
        print(f'monitor: {name}: cut a last line without its newline '
              f'({cut} bytes), left by a stop in the middle of a write',
              file=sys.stderr, flush=True)
    self._ledger = FileLedger(output_dir)

  def run(self, stop: threading.Event, poll_seconds: float) -> None:
    """Polls until `stop` is set, then drains."""
    while True:
      self.poll()
      if stop.wait(poll_seconds):
        break
    self.drain()

  def poll(self) -> int:
    """Reads, scores and windows the new files; returns how many."""
    paths = self._ledger.new_files(self._patterns)
    if not paths:
      return 0
    offset = _size(self._store)
    self._score(paths)
    fresh = read_scored(self._store, offset=offset)
    print(f'monitor: {len(paths)} new file(s), {len(fresh):,} headlines '
          'scored', file=sys.stderr, flush=True)
    watermark = self._window(fresh, drain=False) if fresh else \
        self._ledger.watermark
    self._ledger.record(paths, watermark)
    return len(paths)

  def drain(self) -> None:
    """Writes the windows still open."""
    if self._ledger.watermark is not None:
      self._window([], drain=True)

  def _score(self, paths: List[str]) -> None:
    config = self._config
    watermark = self._ledger.watermark
    expired_before = (None if watermark is None else
                      watermark - config.allowed_lateness_seconds)
    pipeline = beam.Pipeline(options=self._options)
    read = (pipeline | 'Files' >> beam.Create(paths)
            | 'Read' >> ParseHeadlineFiles())
    checked = read.headlines | 'TooLate' >> beam.Map(
        too_late, expired_before, config.window_seconds,
        config.period_seconds).with_outputs(DEAD_LETTERS, main='on_time')
    scored, score_dead_letters = checked.on_time | 'Scoring' >> \
        stages.TickersAndScores(self._model_handler, self._extract_tickers)
    _ = (scored | 'Record' >> beam.Map(ScoredHeadline.to_record)
         | 'Store' >> beam.ParDo(AppendJsonl(self._store)))
    stages.write_dead_letters(
        [stages.count_parse_failures(read[DEAD_LETTERS]),
         checked[DEAD_LETTERS], score_dead_letters], self._output_dir)
    pipeline.run().wait_until_finish()

  def _window(self, fresh: List[ScoredHeadline], drain: bool) -> float:
    """Writes what the `fresh` headlines change and the windows they close
    (`drain`: all open ones); returns the watermark after them."""
    config = self._config
    window, period = config.window_seconds, config.period_seconds
    watermark_before = self._ledger.watermark
    watermark = max([s.headline.timestamp for s in fresh] +
                    ([] if watermark_before is None else [watermark_before]))
    # Windows that fresh headlines fall in, and the open ones, start after
    # `oldest` less a window; their baselines one baseline before that.
    oldest = min([s.headline.timestamp for s in fresh] + [watermark])
    if watermark_before is not None:
      oldest = min(oldest, watermark_before)
    judge_from = slot_start(oldest - window, period)
    history_from = judge_from - config.shock.baseline_seconds - window
    late = [s for s in fresh if watermark_before is not None and
            s.headline.timestamp < watermark_before]
    poll = _Poll(history_from, judge_from, watermark_before, watermark,
                 drain, self._late_panes(late, watermark_before))
    output = self._output_dir
    alerted_before = set(read_changelog(os.path.join(output, ALERTS_FILE),
                                        'alert_id'))

    pipeline = beam.Pipeline(options=self._options)
    windows, alerts = (
        pipeline
        # The store's path, not its headlines: Create would pickle them
        # all into the pipeline (a third of a poll's time).
        | 'Store' >> beam.Create([self._store])
        | 'Scored' >> beam.FlatMap(read_scored, history_from)
        | 'Monitor' >> stages.WindowsAndShocks(
            config, bounded=True, judged=(
                beam.Filter(poll.closed) | beam.Map(poll.with_pane))))
    windows = windows | 'ThisPoll' >> beam.Filter(
        lambda r: poll.writes(r['id'], r))
    alerts = alerts | 'AlertsThisPoll' >> beam.Filter(
        lambda a: poll.writes(a['alert_id'], a))
    retracted = (windows, alerts) | 'Retract' >> Retractions(alerted_before)
    webhook_dead_letters = stages.write_windows_and_alerts(
        windows, (alerts, retracted) | 'AndRetractions' >> beam.Flatten(),
        output, self._webhook_url, config)
    if webhook_dead_letters:
      stages.write_dead_letters(webhook_dead_letters, output)
    pipeline.run().wait_until_finish()
    return watermark

  def _late_panes(self, late: List[ScoredHeadline],
                  watermark_before: Optional[float]) -> Dict[str, int]:
    """Window id -> the pane index of its next late pane, for the closed
    windows that `late` headlines fall in."""
    if not late:
      return {}
    config = self._config
    window, period = config.window_seconds, config.period_seconds
    changed: Set[str] = set()
    for scored in late:
      slot = slot_start(scored.headline.timestamp, period)
      for key, _ in by_key(scored):
        for start in window_starts(slot, window, period):
          end = start + window
          if end <= watermark_before and \
              end + config.allowed_lateness_seconds >= watermark_before:
            changed.add(f'{key}/{format_time(end)}')
    written = read_changelog(os.path.join(self._output_dir, WINDOWS_FILE),
                             'id')
    return {window_id: written[window_id][1]['pane_index'] + 1
            if window_id in written else 0 for window_id in changed}


class Retractions(beam.PTransform):
  """(window records, alerts) written in a poll -> a retraction for each
  window that had an alert (`alerted_before`: alert ids) and is written
  again without one."""

  def __init__(self, alerted_before: Set[str]):
    super().__init__()
    self._alerted_before = alerted_before

  def expand(self, windows_and_alerts):
    windows, alerts = windows_and_alerts
    alerted_before = self._alerted_before
    return (
        {'window': windows
                   | 'HadAlert' >> beam.Filter(
                       lambda r: r['id'] in alerted_before)
                   | 'WindowById' >> beam.Map(lambda r: (r['id'], r)),
         'alert': alerts | 'AlertById' >> beam.Map(
             lambda a: (a['alert_id'], a))}
        | 'ById' >> beam.CoGroupByKey()
        | 'WithoutAlert' >> beam.FlatMap(
            lambda by_id: [retraction(w) for w in by_id[1]['window']]
            if not by_id[1]['alert'] else []))


def cut_torn_tail(path: str) -> int:
  """Cuts the last line of `path` if it has no newline (a stop in the
  middle of a write left it); returns the bytes cut."""
  if not os.path.exists(path):
    return 0
  with open(path, 'rb+') as f:
    end = f.seek(0, os.SEEK_END)
    position = end
    while position > 0:
      block = min(65536, position)
      f.seek(position - block)
      newline = f.read(block).rfind(b'\n')
      if newline >= 0:
        position = position - block + newline + 1
        break
      position -= block
    f.truncate(position)
  return end - position


def _size(path: str) -> int:
  return os.path.getsize(path) if os.path.exists(path) else 0
