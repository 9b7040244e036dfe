"""Labelled data -> a timestamped headline stream with an injected
negative-sentiment shock, to demo and test the monitoring job (`finsent
replay`, commands/replay.py).

Every record of the data (a file, or a train/eval folder such as
Twitter-FNS's, train first) becomes one headline:

* the records, shuffled with the seed, are published evenly over
  `span_hours` from `start`;
* `ticker_share` of all the headlines (or as many as can) get one of the
  tickers' cashtags (`$ACME ` before the text), the tickers taking turns in
  time order so that each has a steady flow over the whole span. A headline
  that already has a cashtag ($AAPL, common in Twitter-FNS) keeps its text
  and never gets a second one, so only the others can be chosen;
* then, unless the stream is to stay flat, `shock_size` more headlines:
  negative records without a cashtag, given the shocked ticker's, published
  evenly over `shock_minutes` from `start + shock_at * span`. A topic's
  shock (`shock_topic`) instead adds negative records of that topic as they
  are, no cashtag added: it needs data whose records carry both a
  sentiment label and a topic (a canonical CSV or JSONL with both).

The output is JSONL sorted by `published_at`, one headline per line:

  {"id": "replay-000001", "text": "$ACME Shares slide after ...",
   "published_at": "2026-03-02T00:00:36Z", "source": "replay",
   "label": "negative", "injected": false}

`label` is the record's own (the ground truth), as is `topic` where the
records have one, and `injected` marks the shock's headlines. Times are ISO-8601 UTC in whole seconds. Every default is
in finsent.configs.ReplayConfig (configs/monitoring.py).
"""

import collections
import datetime
import json
import math
import os
import random
import re
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from finsent.data.loaders import DataFormatError
from finsent.data.loaders import Record
from finsent.data.loaders import read_records
from finsent.data.loaders import resolve_input
from finsent.monitoring.entities import CASHTAG
from finsent.configs import ReplayConfig
from finsent.configs import TOPICS

TICKER = re.compile(r'[A-Z]{1,5}')
SOURCE = 'replay'
ID_PREFIX = 'replay-'


def parse_start(start: str) -> datetime.datetime:
  """`start` as an aware UTC datetime, to the second; raises ValueError."""
  example = ReplayConfig.start
  try:
    parsed = datetime.datetime.fromisoformat(
        start.strip().replace('Z', '+00:00'))
  except ValueError:
    raise ValueError(f'start {start!r} is not an ISO-8601 time, e.g. '
                     f'{example}') from None
  if parsed.tzinfo is None:
    raise ValueError(f'start {start!r} has no timezone; add one, e.g. '
                     f'{example}')
  return parsed.astimezone(datetime.timezone.utc).replace(microsecond=0)


def format_time(moment: datetime.datetime) -> str:
  return moment.replace(tzinfo=None).isoformat(timespec='seconds') + 'Z'


def shock_interval(config: ReplayConfig
                   ) -> Tuple[datetime.datetime, datetime.datetime]:
  """When the shock's headlines are published: [first, end)."""
  first = parse_start(config.start) + datetime.timedelta(
      seconds=int(config.shock_at * config.span_hours * 3600))
  return first, first + datetime.timedelta(minutes=config.shock_minutes)


def check_config(config: ReplayConfig, shock_ticker: Optional[str],
                 shock_topic: Optional[str] = None) -> None:
  """Raises ValueError naming the first setting that cannot make a stream."""
  if shock_ticker is not None and shock_topic is not None:
    raise ValueError('one shock at a time: a ticker or a topic, not both')
  if shock_topic is not None and shock_topic not in TOPICS:
    raise ValueError(f'shock topic {shock_topic!r} is not a topic; the '
                     f'topics are {", ".join(TOPICS)}')
  if not config.tickers:
    raise ValueError('tickers is empty; give at least one')
  for ticker in config.tickers:
    if not TICKER.fullmatch(ticker):
      raise ValueError(f'ticker {ticker!r} is not 1-5 uppercase letters')
  repeated = [t for t, n in collections.Counter(config.tickers).items()
              if n > 1]
  if repeated:
    raise ValueError(f'tickers {", ".join(config.tickers)} name '
                     f'{", ".join(repeated)} more than once')
  if shock_ticker is not None and shock_ticker not in config.tickers:
    raise ValueError(f'shock ticker {shock_ticker!r} is not one of the '
                     f'tickers {", ".join(config.tickers)}')
  # The comparisons are written so that NaN fails them too.
  if not 0 < config.span_hours < math.inf:
    raise ValueError(f'span_hours must be a positive number, got '
                     f'{config.span_hours}')
  if not 0 <= config.ticker_share <= 1:
    raise ValueError(f'ticker_share must be within [0, 1], got '
                     f'{config.ticker_share}')
  if not 0 <= config.shock_at < 1:
    raise ValueError(f'shock_at must be within [0, 1), got {config.shock_at}')
  if config.shock_size < 1:
    raise ValueError(f'shock_size must be at least 1, got {config.shock_size}')
  if not 0 < config.shock_minutes < math.inf:
    raise ValueError(f'shock_minutes must be a positive number, got '
                     f'{config.shock_minutes}')
  start = parse_start(config.start)
  try:
    end = start + datetime.timedelta(hours=config.span_hours)
    shock_end = shock_interval(config)[1]
  except OverflowError:
    raise ValueError(f'span_hours {config.span_hours} or shock_minutes '
                     f'{config.shock_minutes} from start {config.start} '
                     'reaches past the year 9999') from None
  # Checked with or without a shock, so that the flat stream and the
  # shocked one of the same settings cover the same span.
  if shock_end > end:
    raise ValueError(
        f'the shock (shock_at {config.shock_at}, shock_minutes '
        f'{config.shock_minutes}) would end at {format_time(shock_end)}, after '
        f'the span ends at {format_time(end)}; lower shock_at or '
        'shock_minutes, or raise span_hours')


def replay(records: Sequence[Record], config: ReplayConfig,
           shock_ticker: Optional[str],
           shock_topic: Optional[str] = None) -> List[Dict]:
  """The headline stream of `records` (see the module docstring), with a
  shock for `shock_ticker` or for `shock_topic`, none when both are None.
  Raises ValueError on settings or data it cannot make a stream of."""
  check_config(config, shock_ticker, shock_topic)
  if not records:
    raise ValueError('no records to replay')
  rng = random.Random(config.seed)
  start = parse_start(config.start)
  span_seconds = config.span_hours * 3600
  shuffled = list(records)
  rng.shuffle(shuffled)
  taggable = [i for i, r in enumerate(shuffled) if not CASHTAG.search(r.text)]
  tagged = sorted(rng.sample(taggable, min(
      len(taggable), round(config.ticker_share * len(shuffled)))))
  ticker_at = {i: config.tickers[turn % len(config.tickers)]
               for turn, i in enumerate(tagged)}
  # (published, text, record, injected)
  headlines = [
      (start + datetime.timedelta(
          seconds=int(i * span_seconds / len(shuffled))),
       f'${ticker_at[i]} {r.text}' if i in ticker_at else r.text, r, False)
      for i, r in enumerate(shuffled)]
  # Drawn after the flat stream, so that the shock leaves it as it is.
  if shock_ticker is not None or shock_topic is not None:
    drawn = _draw_shock(records, config, shock_topic, rng)
    first, _ = shock_interval(config)
    headlines.extend(
        (first + datetime.timedelta(
            seconds=int(n * config.shock_minutes * 60 / config.shock_size)),
         r.text if shock_topic else f'${shock_ticker} {r.text}', r, True)
        for n, r in enumerate(drawn))
  headlines.sort(key=lambda headline: headline[0])
  return [{'id': f'{ID_PREFIX}{n:06d}', 'text': text,
           'published_at': format_time(published), 'source': SOURCE,
           'label': r.label, **({'topic': r.topic} if r.topic else {}),
           'injected': injected}
          for n, (published, text, r, injected)
          in enumerate(headlines, start=1)]


def _draw_shock(records: Sequence[Record], config: ReplayConfig,
                shock_topic: Optional[str], rng: random.Random
                ) -> List[Record]:
  """The shock's `shock_size` records: negative ones without a cashtag
  (a ticker's shock), or negative ones of `shock_topic`; drawn with
  replacement only when there are too few."""
  if shock_topic is None:
    negatives = [r for r in records
                 if r.label == 'negative' and not CASHTAG.search(r.text)]
    if not negatives:
      raise ValueError('the data has no negative record without a cashtag '
                       'to make the shock of')
  else:
    negatives = [r for r in records
                 if r.label == 'negative' and r.topic == shock_topic]
    if not negatives:
      raise ValueError(
          f'the data has no negative record of the topic {shock_topic!r} to '
          'make the shock of: a topic\'s shock needs records with both a '
          'sentiment label and a topic (a canonical CSV or JSONL with label '
          'and topic columns)')
  return (rng.sample(negatives, config.shock_size)
          if len(negatives) >= config.shock_size
          else rng.choices(negatives, k=config.shock_size))


def read_data(path: str) -> Tuple[List[Record], Tuple[str, ...]]:
  """Every record of a data file or folder, split by split, and the names
  of the folder's files in no split (which are not read)."""
  layout = resolve_input(path)
  records = []
  for split, paths in layout.files.items():
    if not paths:
      raise DataFormatError(
          os.path.join(layout.input_base, layout.splits[split]), None,
          'no files match')
    for file_path in paths:
      records.extend(read_records(file_path))
  return records, layout.ignored


def write_jsonl(rows: Sequence[Dict], path: str) -> None:
  """Writes one JSON object per line through a temporary file and a
  rename, so that a failed run never leaves half a file at `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, temp_path = tempfile.mkstemp(
      dir=directory, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      for row in rows:
        # ASCII escapes: texts hold U+2028 and the like, which readers that
        # split lines on every Unicode line break (str.splitlines) would cut.
        f.write(json.dumps(row) + '\n')
    os.chmod(temp_path, 0o644)  # mkstemp's 0600 would hide it from others
    os.replace(temp_path, path)
  except BaseException:
    os.unlink(temp_path)
    raise


def summary(rows: Sequence[Dict], config: ReplayConfig,
            shock_ticker: Optional[str], path: str,
            shock_topic: Optional[str] = None) -> str:
  """One line: the span, each ticker's flow, and the shock."""
  start = parse_start(config.start)
  end = start + datetime.timedelta(hours=config.span_hours)
  flat = [{tag.upper() for tag in CASHTAG.findall(r['text'])}
          for r in rows if not r['injected']]
  per_ticker = ', '.join(
      f'{t} {sum(t in tags for tags in flat)}' for t in config.tickers)
  ours = set(config.tickers)
  others = sum(bool(tags) and not tags & ours for tags in flat)
  parts = [f'wrote {len(rows)} headlines to {path}: {format_time(start)} .. '
           f'{format_time(end)}', f'tickers {per_ticker}']
  if others:
    parts.append(f'other cashtags {others}')
  parts.append(f'market-only {sum(not tags for tags in flat)}')
  first, shock_end = shock_interval(config)
  during = f'{format_time(first)} .. {format_time(shock_end)}'
  if shock_topic is not None:
    parts.append(f'shock: {config.shock_size} negative headlines of the '
                 f'topic {shock_topic!r} {during}')
  elif shock_ticker is not None:
    parts.append(f'shock: {config.shock_size} negative headlines for '
                 f'${shock_ticker} {during}')
  else:
    parts.append('no shock')
  return '; '.join(parts)
