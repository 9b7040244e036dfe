"""`finsent monitor-report`: the page in a real headless Chromium, the
report's reading and ordering rules, and the Grafana dashboard's queries."""

import datetime
import functools
import http.server
import json
import os
import re
import threading

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from finsent.commands import monitor_report
from finsent.commands.reports import monitor as report

CHROMEDRIVER = '/usr/bin/chromedriver'
CHROMIUM = '/usr/bin/chromium'
DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'monitoring', 'grafana',
    'finsent-monitor.json')

UTC = datetime.timezone.utc
START = datetime.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SIZE = datetime.timedelta(minutes=30)
PERIOD = datetime.timedelta(minutes=10)
# (negative, neutral, positive) headlines per window, one window per PERIOD.
# ACME's negative shock in windows 3 and 4 raises the one alert.
LABEL_COUNTS = {
    '*': [(3, 4, 3), (4, 4, 3), (5, 3, 2), (12, 3, 1), (14, 2, 1), (6, 4, 3)],
    'ACME': [(1, 2, 1), (1, 1, 1), (2, 1, 0), (9, 1, 0), (10, 1, 0),
             (2, 1, 1)],
    'BETA': [(1, 1, 2), (1, 2, 1), (1, 1, 1), (1, 1, 1), (1, 0, 1),
             (1, 2, 1), (1, 1, 1)],
}
INJECTED = '<script>alert(1)</script> ACME & "Co" guidance cut'


def _iso(stamp: datetime.datetime) -> str:
  return stamp.strftime('%Y-%m-%dT%H:%M:%SZ')


def _window_record(key, index, negative, neutral, positive, pane='ON_TIME',
                   pane_index=0):
  start = START + index * PERIOD
  count = negative + neutral + positive
  return {'id': f'{key}/{_iso(start + SIZE)}', 'key': key,
          'window_start': _iso(start),
          'window_end': _iso(start + SIZE), 'count': count,
          'negative': negative, 'neutral': neutral, 'positive': positive,
          'share_negative': round(negative / count, 4),
          'share_positive': round(positive / count, 4),
          'mean_score': round((positive - negative) / count, 3),
          'pane': pane, 'pane_index': pane_index}


ALERT = {
    'alert_id': 'ACME/2026-03-02T09:10:00Z', 'key': 'ACME',
    'window_start': '2026-03-02T08:40:00Z',
    'window_end': '2026-03-02T09:10:00Z', 'metric': 'share_negative',
    'value': 0.9091, 'baseline_median': 0.33, 'baseline_scale': 0.1,
    'z_score': 5.8, 'z_threshold': 3.5, 'count': 11, 'baseline_windows': 4,
    'top_headlines': [
        {'id': 'replay-000917', 'text': INJECTED,
         'published_at': '2026-03-02T09:02:11Z', 'label': 'negative',
         'p_negative': 0.97},
        {'id': 'replay-000921', 'text': '$ACME plunges after profit warning',
         'published_at': '2026-03-02T09:04:40Z', 'label': 'negative',
         'p_negative': 0.93}]}
DEAD_LETTERS = [
    {'id': 'parse/headlines.jsonl:17', 'stage': 'parse',
     'where': 'headlines.jsonl:17', 'record': '{"text": ',
     'reason': 'not valid JSON'},
    {'id': 'parse/headlines.jsonl:40', 'stage': 'parse',
     'where': 'headlines.jsonl:40', 'record': '[1, 2]',
     'reason': 'not valid JSON'},
    {'id': 'score/headlines.jsonl:52', 'stage': 'score',
     'where': 'headlines.jsonl:52',
     'record': {'id': 'x', 'text': ''}, 'reason': 'empty text'},
]


def _write_jsonl(path, records):
  with open(path, 'w', encoding='utf-8') as f:
    for record in records:
      f.write((record if isinstance(record, str) else json.dumps(record))
              + '\n')


def write_monitor_output(directory, alerts=(ALERT,), windows=None):
  """A small `finsent monitor` output: the market and two tickers."""
  os.makedirs(directory, exist_ok=True)
  if windows is None:
    windows = [_window_record(key, i, *counts)
               for key, rows in LABEL_COUNTS.items()
               for i, counts in enumerate(rows)]
  _write_jsonl(os.path.join(directory, 'windows.jsonl'), windows)
  _write_jsonl(os.path.join(directory, 'alerts.jsonl'), alerts)
  _write_jsonl(os.path.join(directory, 'dead_letters.jsonl'), DEAD_LETTERS)
  return str(directory)


# The page in a headless Chromium, served over HTTP.


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, *args):  # no request lines in the test output
    pass


@pytest.fixture(scope='module')
def report_dir(tmp_path_factory):
  monitor_dir = write_monitor_output(tmp_path_factory.mktemp('monitor'))
  out = os.path.join(monitor_dir, 'report')
  assert monitor_report.main([monitor_dir]) == 0
  return out


@pytest.fixture(scope='module')
def page_url(report_dir):
  server = http.server.ThreadingHTTPServer(
      ('127.0.0.1', 0), functools.partial(_QuietHandler,
                                          directory=report_dir))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.server_address[1]}/index.html'
  server.shutdown()
  server.server_close()
  thread.join(timeout=5)


@pytest.fixture(scope='module')
def browser(tmp_path_factory):
  if not (os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)):
    pytest.skip('no Chromium/ChromeDriver (`make browser` installs '
                'Debian\'s chromium and chromium-driver)')
  options = webdriver.ChromeOptions()
  for argument in ('--headless=new', '--no-sandbox', '--disable-gpu',
                   '--disable-dev-shm-usage', '--no-first-run',
                   '--disable-background-networking',
                   '--disable-component-update', '--disable-sync',
                   f'--user-data-dir={tmp_path_factory.mktemp("chromium")}'):
    options.add_argument(argument)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  # An explicit driver path: Selenium Manager never downloads one.
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  driver.set_page_load_timeout(30)
  yield driver
  driver.quit()


@pytest.fixture(scope='module')
def page(browser, page_url):
  browser.get(page_url)
  return browser


def test_page_title_and_header(page):
  assert page.title == (
      'finsent monitor report: 2026-03-02 08:00 – 09:30 UTC')
  header = page.find_element(By.ID, 'summary')
  assert header.find_element(By.TAG_NAME, 'h1').text == (
      'finsent monitor report')
  stats = dict(zip(
      [e.text for e in header.find_elements(By.CSS_SELECTOR, 'dl.stats dt')],
      [e.text for e in header.find_elements(By.CSS_SELECTOR, 'dl.stats dd')]))
  assert stats['Alerts'] == '1'
  assert stats['Tickers'] == '2'
  assert stats['Dead letters'] == '3 (2 at parse, 1 at score)'
  assert stats['Time range'] == '2026-03-02 08:00 – 09:30 UTC'
  # The market's 77 window counts, each headline in three windows.
  assert stats['Headlines scored'] == (
      '≈ 26 (15 negative, 7 neutral, 4 positive)')


def test_alerts_table_has_the_alert(page):
  rows = page.find_elements(By.CSS_SELECTOR, '#alerts table.alerts tr.alert')
  assert len(rows) == 1
  assert rows[0].find_element(By.CSS_SELECTOR, 'td.key').text == 'ACME'
  assert '91% vs 33% ± 10%' in rows[0].text
  assert len(rows[0].find_elements(By.CSS_SELECTOR, 'ol.headlines li')) == 2


def test_every_image_loaded_one_per_key(page):
  images = page.execute_script(
      'return Array.from(document.images).map(img => ({src: img.src, '
      'loaded: img.complete && img.naturalWidth > 0}));')
  assert [i['src'].rsplit('/', 1)[1] for i in images] == [
      'timeline_market.png', 'timeline_ACME.png', 'timeline_BETA.png']
  assert all(i['loaded'] for i in images), images
  keys = [f.get_attribute('data-key') for f in
          page.find_elements(By.CSS_SELECTOR, '#timelines figure.timeline')]
  assert keys == ['*', 'ACME', 'BETA']


def test_no_console_errors(page):
  severe = [entry for entry in page.get_log('browser')
            if entry['level'] == 'SEVERE']
  assert not severe


def test_injected_script_shows_as_text(page):
  with pytest.raises(NoAlertPresentException):
    page.switch_to.alert  # pylint: disable=pointless-statement
  # The page itself has no scripts: the headline's did not become one.
  assert page.execute_script('return document.scripts.length') == 0
  texts = page.find_elements(By.CSS_SELECTOR, '#alerts .headline-text')
  assert texts[0].text == INJECTED
  assert texts[0].is_displayed()


# The report's rules, without a browser.


def test_keys_market_first_then_alerted_then_by_volume():
  volumes = {'ZED': 50, 'ACME': 10, '*': 100, 'BETA': 30, 'CORP': 30,
             'DUO': 5}
  assert report.order_keys(volumes, {'ACME': 1, 'DUO': 2, 'NOWIN': 1}) == [
      '*', 'DUO', 'ACME', 'ZED', 'BETA', 'CORP']
  assert report.order_keys({'B': 1, 'A': 1}, {}) == ['A', 'B']
  topics = {'topic:Macro': 40, 'topic:IPO': 3, 'topic:Energy | Oil': 9}
  assert report.order_keys({**volumes, **topics}, {'topic:IPO': 1}) == [
      '*', 'topic:IPO', 'topic:Macro', 'topic:Energy | Oil', 'ZED', 'BETA',
      'CORP', 'ACME', 'DUO']
  assert report.chart_file_names(['topic:Energy | Oil']) == {
      'topic:Energy | Oil': 'timeline_topic_Energy___Oil.png'}


def test_chart_file_names_are_safe_and_unique():
  assert report.chart_file_names(
      ['*', 'ACME', 'BRK.B', 'a/b', 'a?b', 'market']) == {
      '*': 'timeline_market.png', 'ACME': 'timeline_ACME.png',
      'BRK.B': 'timeline_BRK.B.png', 'a/b': 'timeline_a_b.png',
      'a?b': 'timeline_a_b_2.png', 'market': 'timeline_market_2.png'}


def test_max_tickers_cuts_off_the_rest(tmp_path, capsys):
  monitor_dir = write_monitor_output(tmp_path / 'monitor')
  out = tmp_path / 'out'
  assert monitor_report.main([monitor_dir, '--output_dir', str(out),
                      '--max_tickers', '1']) == 0
  assert sorted(p.name for p in out.iterdir()) == [
      'index.html', 'timeline_ACME.png', 'timeline_market.png']
  page = (out / 'index.html').read_text()
  left_out = re.search(r'<p id="left-out">(.*?)</p>', page).group(1)
  assert 'BETA' in left_out and 'ACME' not in left_out
  printed = capsys.readouterr().out
  assert f'Report: {out / "index.html"}' in printed
  assert 'Left out (--max_tickers 1): BETA' in printed


def test_malformed_line_names_file_and_line(tmp_path, capsys):
  monitor_dir = write_monitor_output(tmp_path, windows=[
      _window_record('ACME', 0, 1, 1, 1), '{"key": "ACME", "count": 3'])
  assert monitor_report.main([monitor_dir]) == 2
  error = capsys.readouterr().err
  assert error.startswith(
      f'finsent monitor-report: error: {tmp_path / "windows.jsonl"}:2: '
      'not valid JSON')


def test_missing_field_names_file_and_line(tmp_path, capsys):
  record = _window_record('ACME', 0, 1, 1, 1)
  del record['share_negative']
  monitor_dir = write_monitor_output(tmp_path, windows=[record])
  assert monitor_report.main([monitor_dir]) == 2
  assert (f'{tmp_path / "windows.jsonl"}:1: \'share_negative\' missing'
          in capsys.readouterr().err)


def test_missing_windows_file_is_an_error(tmp_path, capsys):
  assert monitor_report.main([str(tmp_path)]) == 2
  error = capsys.readouterr().err
  assert error.startswith('finsent monitor-report: error: ')
  assert 'windows.jsonl: no such file' in error
  assert not (tmp_path / 'report').exists()


def test_empty_alerts_file(tmp_path):
  monitor_dir = write_monitor_output(tmp_path, alerts=())
  assert os.path.getsize(tmp_path / 'alerts.jsonl') == 0
  assert monitor_report.main([monitor_dir]) == 0
  page = (tmp_path / 'report' / 'index.html').read_text()
  assert '<p class="empty">No alerts.</p>' in page
  assert 'class="alert"' not in page
  assert page.count('<figure class="timeline"') == 3


def test_later_records_replace_earlier_ones(tmp_path):
  # As a running job leaves them: a late pane after its window's first, an
  # alert judged again, a dead letter read again.
  windows = [_window_record('ACME', 0, 1, 1, 1),
             _window_record('ACME', 0, 4, 1, 1, pane='LATE', pane_index=1),
             _window_record('ACME', 1, 1, 1, 1)]
  monitor_dir = write_monitor_output(
      tmp_path, windows=windows, alerts=[ALERT, dict(ALERT, z_score=6.1)])
  _write_jsonl(os.path.join(monitor_dir, 'dead_letters.jsonl'),
               [dict(d, id=f'{d["stage"]}/{d["where"]}')
                for d in DEAD_LETTERS + DEAD_LETTERS[:1]])
  output = report.read_monitor_output(monitor_dir)
  assert [(w.count, w.pane) for w in output.windows] == [
      (6, 'LATE'), (3, 'ON_TIME')]
  assert [a.z_score for a in output.alerts] == [6.1]
  assert len(output.dead_letters) == 3


def test_headline_total_undoes_the_window_overlap(tmp_path):
  # 30-minute windows every 10 minutes: each headline is in three.
  output = report.read_monitor_output(write_monitor_output(tmp_path))
  assert report.window_geometry(output.windows) == (SIZE, PERIOD)
  assert report.windows_per_headline(output.windows) == 3


# The Grafana dashboard.

# The monitor job's Prometheus metrics; histograms as their series.
METRICS = {
    'finsent_monitor_headlines_total', 'finsent_monitor_dead_letters_total',
    'finsent_monitor_alerts_total', 'finsent_monitor_window_share_negative',
    'finsent_monitor_late_headlines_total'} | {
        f'{histogram}_{series}'
        for histogram in ('finsent_monitor_scoring_latency_seconds',
                          'finsent_monitor_batch_size')
        for series in ('bucket', 'sum', 'count')}
PROMQL_WORDS = {
    'sum', 'avg', 'min', 'max', 'count', 'rate', 'irate', 'increase',
    'histogram_quantile', 'sort_desc', 'clamp_min', 'by', 'without', 'on',
    'ignoring', 'and', 'or', 'unless', 'offset', 'bool', 'topk', 'vector',
    'label_values'}


def _metric_names(expr: str):
  """The metric names in a PromQL expression."""
  expr = re.sub(r'\$\{?\w+\}?', '', expr)  # Grafana variables
  expr = re.sub(r'"(?:[^"\\]|\\.)*"', '', expr)  # strings
  expr = re.sub(r'\{[^}]*\}', '', expr)  # label matchers
  expr = re.sub(r'\[[^\]]*\]', '', expr)  # ranges
  expr = re.sub(r'\b(by|without|on|ignoring)\s*\([^)]*\)', '', expr)
  names = re.findall(r'(?<![\w.])[a-zA-Z_:][\w:]*', expr)
  return [n for n in names if n not in PROMQL_WORDS]


def test_grafana_dashboard_queries_only_the_monitor_metrics():
  with open(DASHBOARD, encoding='utf-8') as f:
    dashboard = json.load(f)
  assert dashboard['schemaVersion'] >= 36
  assert any(v['name'] == 'DS_PROMETHEUS' and v['type'] == 'datasource'
             for v in dashboard['templating']['list'])
  panels = [p for p in dashboard['panels'] if p['type'] != 'row']
  assert len(panels) >= 7
  used = set()
  for panel in panels:
    assert panel.get('title'), panel
    assert panel['datasource']['uid'] == '${DS_PROMETHEUS}', panel['title']
    assert panel['targets'], panel['title']
    for target in panel['targets']:
      names = _metric_names(target['expr'])
      assert names, (panel['title'], target['expr'])
      assert set(names) <= METRICS, (panel['title'], target['expr'])
      used.update(names)
  assert used == METRICS
  for variable in dashboard['templating']['list']:
    if variable['type'] == 'query':  # label_values(METRIC, LABEL)
      metric = re.fullmatch(r'label_values\((\w+), *\w+\)',
                            variable['definition']).group(1)
      assert metric in METRICS, variable['name']
  assert _metric_names(
      'histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="b"}[5m])))'
  ) == ['x_bucket']
