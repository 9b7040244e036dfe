"""The monitor report (`finsent monitor-report`): a static HTML page, with a
timeline PNG per key, over what a `finsent monitor` run wrote.

`read_monitor_output` reads and checks the run's files; `write_report`
draws the timelines (the market stream first, then the tickers with
alerts, then the others by headline volume) and writes index.html, a
self-contained page with the time range and counts, the alerts with their
top headlines, the timelines, and the dead letters by stage and reason.
"""

import collections
import dataclasses
import datetime
import html
import json
import os
import urllib.parse
from typing import Dict, List, Optional, Sequence, Tuple

from finsent.data.loaders import LABELS
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import DEAD_LETTERS_FILE
from finsent.monitoring.outputs import is_topic_key
from finsent.monitoring.outputs import MARKET
from finsent.monitoring.outputs import TOPIC_KEY_PREFIX
from finsent.monitoring.outputs import read_changelog
from finsent.monitoring.outputs import WINDOWS_FILE

# How much of a dead letter's record the page shows: enough to recognise it.
RECORD_EXCERPT_CHARS = 240


class ReportError(ValueError):
  """The monitor output is missing or unreadable; says where."""


@dataclasses.dataclass(frozen=True)
class Window:
  """One window aggregate of one key (its latest pane)."""
  key: str
  start: datetime.datetime
  end: datetime.datetime
  count: int
  negative: int
  neutral: int
  positive: int
  share_negative: float
  mean_score: float
  pane: str  # ON_TIME, or LATE: updated by headlines behind the watermark


@dataclasses.dataclass(frozen=True)
class Alert:
  """One alert: a key's window whose metric left its baseline. For the
  negative_count test (monitoring/shocks.py), `value` is the window's
  negatives, `baseline_rate` the baseline's per window, and
  `tail_probability` the chance of so many at that rate."""
  key: str
  start: datetime.datetime
  end: datetime.datetime
  metric: str
  value: float
  baseline_median: Optional[float]
  baseline_scale: Optional[float]
  z_score: Optional[float]
  z_threshold: Optional[float]
  count: Optional[int]
  top_headlines: List[Dict]
  baseline_rate: Optional[float] = None
  tail_probability: Optional[float] = None

  @property
  def baseline(self) -> Optional[float]:
    """What the value was tested against."""
    return (self.baseline_rate if self.baseline_rate is not None
            else self.baseline_median)


@dataclasses.dataclass
class MonitorOutput:
  """What one monitor run wrote, read and checked."""
  directory: str
  windows: List[Window]  # one per key and window, by key then window end
  alerts: List[Alert]  # by window end, then key
  dead_letters: List[Dict]
  alerts_file_found: bool


def _field(record: Dict, name: str, kind: type, where: str):
  """record[name], checked to be a `kind`; `float` takes any JSON number."""
  value = record.get(name)
  # Python's bools are ints, but a JSON true is no count.
  ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is float else
        isinstance(value, kind) and not isinstance(value, bool))
  if not ok:
    raise ReportError(f'{where}: {name!r} missing or not a '
                      f'{"number" if kind is float else kind.__name__} '
                      f'(got {value!r})')
  return value


def _optional_number(record: Dict, name: str) -> Optional[float]:
  value = record.get(name)
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return value
  return None


def _timestamp(record: Dict, name: str, where: str) -> datetime.datetime:
  text = _field(record, name, str, where)
  try:
    stamp = datetime.datetime.fromisoformat(text)
  except ValueError as e:
    raise ReportError(f'{where}: {name!r} is not an ISO 8601 time: '
                      f'{text!r}') from e
  if stamp.tzinfo is None:  # the job writes UTC
    return stamp.replace(tzinfo=datetime.timezone.utc)
  return stamp.astimezone(datetime.timezone.utc)


def _window(where: str, record: Dict) -> Window:
  return Window(
      key=_field(record, 'key', str, where),
      start=_timestamp(record, 'window_start', where),
      end=_timestamp(record, 'window_end', where),
      count=_field(record, 'count', int, where),
      negative=_field(record, 'negative', int, where),
      neutral=_field(record, 'neutral', int, where),
      positive=_field(record, 'positive', int, where),
      share_negative=_field(record, 'share_negative', float, where),
      mean_score=_field(record, 'mean_score', float, where),
      pane=str(record.get('pane', 'ON_TIME')))


def _alert(where: str, record: Dict) -> Alert:
  headlines = record.get('top_headlines') or []
  if not isinstance(headlines, list) or not all(
      isinstance(h, dict) for h in headlines):
    raise ReportError(f'{where}: top_headlines is not a list of objects')
  count = record.get('count')
  return Alert(
      key=_field(record, 'key', str, where),
      start=_timestamp(record, 'window_start', where),
      end=_timestamp(record, 'window_end', where),
      metric=_field(record, 'metric', str, where),
      value=_field(record, 'value', float, where),
      baseline_median=_optional_number(record, 'baseline_median'),
      baseline_scale=_optional_number(record, 'baseline_scale'),
      z_score=_optional_number(record, 'z_score'),
      z_threshold=_optional_number(record, 'z_threshold'),
      count=count if isinstance(count, int) else None,
      top_headlines=headlines,
      baseline_rate=_optional_number(record, 'baseline_rate'),
      tail_probability=_optional_number(record, 'tail_probability'))


def read_monitor_output(directory: str) -> MonitorOutput:
  """Reads and checks DIR's JSONL files.

  The job appends to them as changelogs (monitoring/sinks.py), and compacts
  them when it finishes: a record replaces any earlier one about the same
  thing (a LATE pane its window's earlier pane, an alert judged again, a
  dead letter read again), so a running or interrupted job's files read
  the same as a finished one's.
  """
  windows_path = os.path.join(directory, WINDOWS_FILE)
  if not os.path.isfile(windows_path):
    raise ReportError(f'{windows_path}: no such file (is {directory} the '
                      '--output of a `finsent monitor` run?)')
  windows = [_window(where, record) for where, record in
             read_changelog(windows_path, 'id').values()]
  alerts_path = os.path.join(directory, ALERTS_FILE)
  alerts = [_alert(where, record) for where, record in
            read_changelog(alerts_path, 'alert_id').values()]
  dead_letters = [record for _, record in read_changelog(
      os.path.join(directory, DEAD_LETTERS_FILE), 'id').values()]
  return MonitorOutput(
      directory=directory,
      windows=sorted(windows, key=lambda w: (w.key, w.end, w.start)),
      alerts=sorted(alerts, key=lambda a: (a.end, a.key)),
      dead_letters=dead_letters,
      alerts_file_found=os.path.isfile(alerts_path))


def window_geometry(windows: Sequence[Window]
                    ) -> Tuple[datetime.timedelta, datetime.timedelta]:
  """(window size, period) of the sliding windows: the commonest length and
  the smallest step between window starts (with one start only, the period
  is the size, as for fixed windows)."""
  if not windows:
    return datetime.timedelta(0), datetime.timedelta(0)
  size = collections.Counter(w.end - w.start for w in windows).most_common(
      1)[0][0]
  starts = sorted({w.start for w in windows})
  steps = [b - a for a, b in zip(starts, starts[1:])]
  return size, min(steps) if steps else size


def windows_per_headline(windows: Sequence[Window]) -> float:
  """How many windows each headline falls in: window size over period.

  Sliding windows overlap, so a key's window counts add up to this many
  times its headlines.
  """
  size, period = window_geometry(windows)
  return max(1.0, size / period) if period else 1.0


def order_keys(volumes: Dict[str, int], alert_counts: Dict[str, int]
               ) -> List[str]:
  """The market key first, then the topics, then the tickers; topics and
  tickers each with alerts first (most alerts first), then the others by
  volume (most first); ties by name."""
  def ordered(keys):
    alerted = sorted((k for k in keys if alert_counts.get(k)),
                     key=lambda k: (-alert_counts[k], -volumes[k], k))
    others = sorted((k for k in keys if not alert_counts.get(k)),
                    key=lambda k: (-volumes[k], k))
    return alerted + others
  topics = [k for k in volumes if is_topic_key(k)]
  tickers = [k for k in volumes if k != MARKET and not is_topic_key(k)]
  return (([MARKET] if MARKET in volumes else []) + ordered(topics) +
          ordered(tickers))


def chart_file_names(keys: Sequence[str]) -> Dict[str, str]:
  """timeline_<KEY>.png per key (timeline_market.png for the market), made
  safe as file names and unique."""
  names: Dict[str, str] = {}
  taken = set()
  for key in keys:
    stem = 'market' if key == MARKET else ''.join(
        c if c.isascii() and (c.isalnum() or c in '-_.') else '_' for c in key)
    name, n = f'timeline_{stem}.png', 1
    while name.lower() in taken:  # case-insensitive file systems
      n += 1
      name = f'timeline_{stem}_{n}.png'
    taken.add(name.lower())
    names[key] = name
  return names


def _key_label(key: str) -> str:
  if is_topic_key(key):
    return f'Topic: {key[len(TOPIC_KEY_PREFIX):]}'
  return 'Market (all headlines)' if key == MARKET else key


def plural(n: int, word: str) -> str:
  return f'{n} {word}{"" if n == 1 else "s"}'


def write_timeline(path: str, key: str, windows: Sequence[Window],
                   alerts: Sequence[Alert], period: datetime.timedelta,
                   x_range: Tuple[datetime.datetime, datetime.datetime]
                   ) -> None:
  """A key's windows over time: share negative and headline counts above,
  mean score below, each alert's window shaded and its value starred. Each
  count bar spans `period`, the step between windows, up to its window's
  end; the x axis spans `x_range`."""
  # The object-oriented API, not pyplot: no global backend or figure state,
  # so callers that use another backend are left alone. PNGs render with Agg.
  from matplotlib import dates  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  utc = datetime.timezone.utc
  figure = Figure(figsize=(10, 5), layout='constrained')
  shares, scores = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
  counts = shares.twinx()
  # The count bars behind the share line, which needs its own axes on top.
  shares.set_zorder(counts.get_zorder() + 1)
  shares.patch.set_visible(False)
  ends = [w.end for w in windows]
  # Point markers help on a few windows and clutter hundreds.
  marker = '.' if len(windows) <= 60 else None
  # Bars a little narrower than the period, so that neighbours stay apart.
  counts.bar(ends, [w.count for w in windows],
             width=-0.85 * period.total_seconds() / 86400, align='edge',
             color='#d3dce8', label='headlines per window', zorder=1)
  counts.set_ylabel('headlines per window', color='#5a6f8c')
  counts.tick_params(axis='y', colors='#5a6f8c')
  counts.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  shares.plot(ends, [w.share_negative for w in windows], color='#c0392b',
              marker=marker, linewidth=1.5, label='share negative')
  shares.set_ylim(0, 1.05)
  shares.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
  shares.set_ylabel('share negative')
  scores.plot(ends, [w.mean_score for w in windows], color='#2c3e50',
              marker=marker, linewidth=1.2)
  scores.axhline(0, color='#999999', linewidth=0.8)
  scores.set_ylim(-1.05, 1.05)
  scores.set_ylabel('mean score')
  # Overlapping windows of one shock alert together: only the strongest
  # alert's z is written, so that the labels stay readable.
  strongest = max((a for a in alerts if a.z_score is not None),
                  key=lambda a: a.z_score, default=None)
  for alert in alerts:
    # On the count axes, the top panel's lowest, to stay behind the bars.
    for axes in (counts, scores):
      axes.axvspan(alert.start, alert.end, color='#e67e22', alpha=0.15,
                   linewidth=0, zorder=0)
    # Shares (0..1) are drawn on the top panel, scores (-1..1) below, and
    # negative counts on the headline counts' axis.
    axes = {'mean_score': scores, 'negative_count': counts}.get(
        alert.metric, shares)
    if alert.baseline is not None:
      axes.hlines(alert.baseline, alert.start, alert.end,
                  colors='#e67e22', linestyles='--', linewidth=1.2)
    axes.plot([alert.end], [alert.value], marker='*', markersize=15,
              color='#e67e22', markeredgecolor='black', linestyle='none')
    if alert is strongest:
      axes.annotate(f'z={alert.z_score:.1f}', (alert.end, alert.value),
                    xytext=(6, 4), textcoords='offset points', fontsize=8)
  handles = shares.get_legend_handles_labels()[0] + \
      counts.get_legend_handles_labels()[0]
  if alerts:
    handles.append(patches.Patch(color='#e67e22', alpha=0.4,
                                 label='alert window (* value, -- baseline)'))
  figure.legend(handles=handles, loc='outside lower center', ncol=3,
                fontsize=8, frameon=False)
  locator = dates.AutoDateLocator(tz=utc)
  scores.xaxis.set_major_locator(locator)
  scores.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=utc))
  scores.set_xlabel('window end (UTC)')
  scores.set_xlim(*x_range)
  for axes in (shares, scores):
    axes.grid(axis='y', color='#eeeeee')
  figure.suptitle(f'{_key_label(key)}: {plural(len(alerts), "alert")}',
                  fontweight='bold')
  figure.savefig(path, dpi=100)


# The page's look; inline so that the page needs nothing but its PNGs.
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 72em;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; }
dl.stats { display: grid; grid-template-columns: max-content auto;
           gap: 0.2em 1em; }
dl.stats dt { font-weight: 600; }
dl.stats dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.35em 0.5em;
         text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; white-space: nowrap; }
ol.headlines { margin: 0; padding-left: 1.2em; }
.label { font-size: 0.8em; padding: 0 0.3em; border-radius: 3px;
         white-space: nowrap; }
.label.negative { background: #f6d5d1; }
.label.neutral { background: #e8e8e8; }
.label.positive { background: #d4efdf; }
.meta { color: #777; font-size: 0.85em; }
figure.timeline { margin: 1.5em 0; }
figure.timeline img { max-width: 100%; height: auto;
                      border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
code { font-size: 0.85em; word-break: break-all; }
"""


def _time(stamp: datetime.datetime) -> str:
  return stamp.strftime('%Y-%m-%d %H:%M')


def _span(start: datetime.datetime, end: datetime.datetime) -> str:
  if start.date() == end.date():
    return f'{_time(start)} – {end:%H:%M} UTC'
  return f'{_time(start)} – {_time(end)} UTC'


def _metric_value(metric: str, value: Optional[float]) -> str:
  if value is None:
    return '–'
  return f'{value:.0%}' if metric.startswith('share_') else f'{value:.3g}'


def _headline_items(headlines: Sequence[Dict]) -> str:
  items = []
  for h in headlines:
    label = h.get('label')
    # A class name from the data only when it is one the stylesheet knows.
    css = label if label in LABELS else 'other'
    p_negative = h.get('p_negative')
    chance = (f' {p_negative:.2f}' if isinstance(p_negative, (int, float))
              else '')
    meta = ' · '.join(str(h[k]) for k in ('id', 'published_at') if h.get(k))
    items.append(
        f'<li><span class="label {css}">{html.escape(str(label or "?"))}'
        f'{chance}</span> <span class="headline-text">'
        f'{html.escape(str(h.get("text", "")))}</span> '
        f'<span class="meta">{html.escape(meta)}</span></li>')
  return f'<ol class="headlines">{"".join(items)}</ol>' if items else ''


def _alerts_section(alerts: Sequence[Alert], found: bool) -> str:
  parts = [f'<section id="alerts"><h2>Alerts ({len(alerts)})</h2>']
  if not alerts:
    parts.append('<p class="empty">No alerts.' + (
        '' if found else f' (There is no {ALERTS_FILE}.)') + '</p>')
  else:
    parts.append(
        '<table class="alerts"><thead><tr><th>Ticker</th><th>Window</th>'
        '<th>Metric</th><th>Value vs baseline</th><th>z</th>'
        '<th>Headlines</th><th>Top headlines</th></tr></thead><tbody>')
    for a in alerts:
      baseline = _metric_value(a.metric, a.baseline)
      if a.baseline_scale is not None:
        baseline += f' ± {_metric_value(a.metric, a.baseline_scale)}'
      z = '–' if a.z_score is None else f'{a.z_score:.1f}'
      if a.z_threshold is not None:
        z += f' (≥ {a.z_threshold:g})'
      if a.tail_probability is not None:
        z += f', p {a.tail_probability:.2g}'
      parts.append(
          f'<tr class="alert" data-key="{html.escape(a.key)}">'
          f'<td class="key">{html.escape(_key_label(a.key))}</td>'
          f'<td>{html.escape(_span(a.start, a.end))}</td>'
          f'<td>{html.escape(a.metric)}</td>'
          f'<td class="number"><strong>'
          f'{html.escape(_metric_value(a.metric, a.value))}</strong> vs '
          f'{html.escape(baseline)}</td>'
          f'<td class="number">{html.escape(z)}</td>'
          f'<td class="number">{"–" if a.count is None else a.count}</td>'
          f'<td>{_headline_items(a.top_headlines)}</td></tr>')
    parts.append('</tbody></table>')
  parts.append('</section>')
  return ''.join(parts)


def _dead_letters_section(dead_letters: Sequence[Dict]) -> str:
  if not dead_letters:
    return ''
  groups: Dict[Tuple[str, str], List[Dict]] = collections.defaultdict(list)
  for d in dead_letters:
    groups[(str(d.get('stage', '?')), str(d.get('reason', '?')))].append(d)
  rows = []
  for (stage, reason), letters in sorted(
      groups.items(), key=lambda item: (item[0][0], -len(item[1]), item[0][1])):
    first = letters[0]
    record = json.dumps(first.get('record'), ensure_ascii=False)
    if len(record) > RECORD_EXCERPT_CHARS:
      record = record[:RECORD_EXCERPT_CHARS] + '…'
    rows.append(
        f'<tr class="dead-letter"><td>{html.escape(stage)}</td>'
        f'<td>{html.escape(reason)}</td>'
        f'<td class="number">{len(letters)}</td>'
        f'<td>{html.escape(str(first.get("where", "?")))}</td>'
        f'<td><code>{html.escape(record)}</code></td></tr>')
  return (f'<section id="dead-letters"><h2>Dead letters '
          f'({len(dead_letters)})</h2><table class="dead-letters"><thead><tr>'
          '<th>Stage</th><th>Reason</th><th>Count</th><th>First at</th>'
          '<th>First record</th></tr></thead><tbody>' + ''.join(rows) +
          '</tbody></table></section>')


@dataclasses.dataclass
class Report:
  """What `write_report` wrote."""
  index_path: str
  charts: Dict[str, str]  # key -> PNG file name, in page order
  left_out: List[str]  # tickers beyond --max_tickers


def write_report(output: MonitorOutput, output_dir: str,
                 max_tickers: int) -> Report:
  """Writes the timelines and index.html into `output_dir`: timelines for
  the market, every topic and at most `max_tickers` tickers."""
  os.makedirs(output_dir, exist_ok=True)
  by_key: Dict[str, List[Window]] = collections.defaultdict(list)
  for w in output.windows:
    by_key[w.key].append(w)
  alerts_by_key: Dict[str, List[Alert]] = collections.defaultdict(list)
  for a in output.alerts:
    alerts_by_key[a.key].append(a)
  volumes = {k: sum(w.count for w in ws) for k, ws in by_key.items()}
  keys = order_keys(volumes, {k: len(v) for k, v in alerts_by_key.items()})
  tickers = [k for k in keys if k != MARKET and not is_topic_key(k)]
  left_out = tickers[max_tickers:]
  # The market, the topics, then tickers.
  drawn = keys[:len(keys) - len(left_out)]
  charts = chart_file_names(drawn)
  _, period = window_geometry(output.windows)
  ends = [w.end for w in output.windows]
  # One time axis for all keys; the first bar starts a period before the
  # first window's end.
  x_range = (min(ends) - period, max(ends)) if ends else None
  for key in drawn:
    write_timeline(os.path.join(output_dir, charts[key]), key, by_key[key],
                   alerts_by_key.get(key, []), period, x_range)

  overlap = windows_per_headline(output.windows)
  market = by_key.get(MARKET, [])
  stats = []
  if output.windows:
    start = min(w.start for w in output.windows)
    end = max(w.end for w in output.windows)
    time_range = _span(start, end)
    stats.append(('Time range', time_range))
  else:
    time_range = 'no windows'
  late = sum(w.pane == 'LATE' for w in output.windows)
  stats.append(('Windows', f'{len(output.windows)} over '
                f'{plural(len(by_key), "key")}' + (
                    f' ({late} updated by late headlines)' if late else '')))
  if market:
    # Each headline is counted once in every sliding window it falls in.
    totals = {label: round(sum(getattr(w, label) for w in market) / overlap)
              for label in ('count',) + LABELS}
    stats.append(('Headlines scored', f'≈ {totals["count"]} (' + ', '.join(
        f'{totals[label]} {label}' for label in LABELS) + ')'))
  stats.append(('Tickers', str(len(tickers))))
  stats.append(('Alerts', str(len(output.alerts))))
  dead_by_stage = collections.Counter(
      str(d.get('stage', '?')) for d in output.dead_letters)
  stats.append(('Dead letters', str(len(output.dead_letters)) + (
      ' (' + ', '.join(f'{n} at {stage}' for stage, n in
                       sorted(dead_by_stage.items())) + ')'
      if dead_by_stage else '')))

  figures = []
  for key in drawn:
    n_alerts = len(alerts_by_key.get(key, []))
    caption = (f'{_key_label(key)}: ≈ {round(volumes[key] / overlap)} '
               f'headlines in {plural(len(by_key[key]), "window")}, '
               f'{plural(n_alerts, "alert")}.')
    figures.append(
        f'<figure class="timeline" data-key="{html.escape(key)}">'
        f'<img src="{html.escape(urllib.parse.quote(charts[key]))}" '
        f'alt="{html.escape(_key_label(key))} timeline">'
        f'<figcaption>{html.escape(caption)}</figcaption></figure>')
  if left_out:
    figures.append(
        f'<p id="left-out">{plural(len(left_out), "ticker")} without a '
        f'timeline (--max_tickers {max_tickers}): ' + ', '.join(
            html.escape(f'{k} (≈ {round(volumes[k] / overlap)})')
            for k in left_out) + '.</p>')

  page = (
      '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
      '<meta name="viewport" content="width=device-width, initial-scale=1">'
      # No favicon request: the page loads nothing but its own PNGs.
      '<link rel="icon" href="data:,">'
      f'<title>finsent monitor report: {html.escape(time_range)}</title>'
      f'<style>{_CSS}</style></head><body>\n'
      '<header id="summary"><h1>finsent monitor report</h1>'
      f'<p class="source">{html.escape(output.directory)}</p>'
      '<dl class="stats">' + ''.join(
          f'<dt>{html.escape(name)}</dt><dd>{html.escape(value)}</dd>'
          for name, value in stats) + '</dl></header>\n' +
      _alerts_section(output.alerts, output.alerts_file_found) + '\n'
      f'<section id="timelines"><h2>Timelines ({len(drawn)})</h2>' +
      ''.join(figures) + '</section>\n' +
      _dead_letters_section(output.dead_letters) + '\n</body></html>\n')
  index_path = os.path.join(output_dir, 'index.html')
  with open(index_path, 'w', encoding='utf-8') as f:
    f.write(page)
  return Report(index_path, charts, left_out)
