"""`finsent errors` (commands.errors, commands.reports.errors): numbers by hand, and the command."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from finsent.data import loaders
from finsent.commands import errors as errors_command
from finsent.commands.reports import errors as error_report
from tests.conftest import HEADLINES


def _records(rows):
  return [loaders.Record(text=t, label=l) for t, l in rows]


def test_summary_by_hand():
  records = _records([
      ('$ACME falls 5%', 'negative'),            # predicted negative 0.9
      ('Acme rises', 'positive'),               # predicted negative 0.8
      ('Acme to report on Tuesday', 'neutral'),  # predicted neutral 0.6
      ('$ACME up 12% at https://x.co/a', 'positive'),  # predicted neutral 0.7
  ])
  probabilities = np.array([[0.9, 0.05, 0.05],
                            [0.8, 0.1, 0.1],
                            [0.2, 0.6, 0.2],
                            [0.1, 0.7, 0.2]])
  report = error_report.summarise('m', '/m', records, probabilities, top=5)
  assert report.accuracy == 0.5
  # Labels (negative, neutral, positive) by predicted.
  assert report.confusion == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
  # F1: negative 2/3, neutral 2/3, positive 0.
  assert report.macro_f1 == pytest.approx((2 / 3 + 2 / 3 + 0) / 3, abs=1e-4)
  # One example per bin (9 right, 8 wrong, 6 right, 7 wrong):
  # |1-0.9| + |0-0.8| + |1-0.6| + |0-0.7| over 4.
  assert report.expected_calibration_error == pytest.approx(
      (0.1 + 0.8 + 0.4 + 0.7) / 4, abs=1e-4)
  assert report.by_slice['cashtag'] == {
      'no': {'count': 2, 'accuracy': 0.5}, 'yes': {'count': 2, 'accuracy': 0.5}}
  assert report.by_slice['number'] == report.by_slice['cashtag']
  assert report.by_slice['url'] == {'no': {'count': 3, 'accuracy': 0.6667},
                                    'yes': {'count': 1, 'accuracy': 0.0}}
  assert report.by_slice['words'] == {
      '1-8': {'count': 4, 'accuracy': 0.5}}
  assert [m['text'] for m in report.confident_mistakes] == [
      'Acme rises', '$ACME up 12% at https://x.co/a']
  assert report.confident_mistakes[0] == {
      'text': 'Acme rises', 'label': 'positive', 'predicted': 'negative',
      'probability': 0.8}


def test_length_slices_are_in_word_order():
  records = _records([('w ' * n, 'neutral') for n in (40, 3, 20, 10)])
  report = error_report.summarise('m', '/m', records,
                                  np.tile([0.1, 0.8, 0.1], (4, 1)), top=1)
  assert list(report.by_slice['words']) == [
      '1-8', '9-16', '17-32', '33+']
  assert report.confident_mistakes == []


def _write_csv(path, rows):
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['text', 'label'])
    writer.writerows(rows)


def test_command_writes_the_report_for_a_saved_model(exported_model,
                                                     tmp_path, capsys):
  export_dir, _, _ = exported_model
  data = tmp_path / 'headlines.csv'
  rows = HEADLINES + [('$ACME drops 7% after the recall', 'negative')]
  _write_csv(data, rows)
  output = tmp_path / 'report'
  code = errors_command.main(['--data', str(data), '--output', str(output),
                            '--saved_model', f'rnn={export_dir}',
                            '--saved_model', f'again={export_dir}',
                            '--ensemble'])
  assert code == 0
  result = json.loads((output / 'errors.json').read_text())
  assert result['examples'] == len(rows)
  first, second, ensemble = result['models']
  assert first['name'] == 'rnn' and second['name'] == 'again'
  assert first['confusion'] == second['confusion']
  # The mean of one model's probabilities twice is that model's.
  assert ensemble['name'] == 'ensemble'
  assert ensemble['saved_model'] == f'{export_dir} + {export_dir}'
  assert {k: v for k, v in ensemble.items()
          if k not in ('name', 'saved_model')} == {
              k: v for k, v in first.items() if k not in ('name', 'saved_model')}
  assert sum(map(sum, first['confusion'])) == len(rows)
  assert first['by_slice']['cashtag']['yes']['count'] == 1
  markdown = (output / 'errors.md').read_text()
  assert '| rnn | ' in markdown and '## again' in markdown
  assert '![confusion matrices](confusion.png)' in markdown
  # A single file has no eval split: the report says so.
  assert error_report.ALL_RECORDS_CAVEAT in markdown
  assert result['caveat'] == error_report.ALL_RECORDS_CAVEAT
  for chart in ('confusion.png', 'accuracy_by_slice.png'):
    with Image.open(output / chart) as image:
      assert image.format == 'PNG' and image.size[0] > 300
  assert 'rnn          accuracy' in capsys.readouterr().out


@pytest.mark.parametrize('flags,message', [
    (['--saved_model', 'rnn'], 'expected NAME=DIR'),
    (['--saved_model', 'rnn=/nowhere'], '/nowhere holds no saved_model.pb'),
    (['--top', '0'], 'argument --top: must be at least 1, got 0'),
])
def test_bad_flags_exit_2(flags, message, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    errors_command.main(['--data', 'x.csv', '--output', str(tmp_path)] + flags)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_records_without_a_sentiment_label_are_refused(tmp_path, capsys):
  topics = tmp_path / 'topics.csv'
  topics.write_text('text,label,topic\nFed holds,neutral,Fed | Central Banks\n'
                    'Oil slides,,Energy | Oil\n')
  # The data is read before any model is loaded.
  model = tmp_path / 'model'
  model.mkdir()
  (model / 'saved_model.pb').write_bytes(b'never loaded')
  output = tmp_path / 'report'
  assert errors_command.main(['--data', str(topics), '--output', str(output),
                              '--saved_model', f'a={model}']) == 2
  assert (f'{topics}: 1 of 2 records have a topic but no sentiment label'
          in capsys.readouterr().err)
  assert not output.exists()


def test_bad_data_and_missing_models_are_named(exported_model, tmp_path,
                                               capsys):
  export_dir, _, _ = exported_model
  bad = tmp_path / 'bad.csv'
  _write_csv(bad, [('Fine', 'neutral'), ('Odd', 'bullish')])
  output = tmp_path / 'report'
  assert errors_command.main(['--data', str(bad), '--output', str(output),
                            '--saved_model', f'rnn={export_dir}']) == 2
  assert f'{bad}:3:' in capsys.readouterr().err
  assert errors_command.main(['--data', str(bad), '--output', str(output),
                            '--serving_model_dir', str(tmp_path)]) == 2
  assert f'no pushed model under {tmp_path}' in capsys.readouterr().err
  assert errors_command.main(['--data', str(bad), '--output', str(output),
                            '--saved_model', f'a={export_dir}',
                            '--saved_model', f'a={export_dir}']) == 2
  assert 'must be different' in capsys.readouterr().err
  assert errors_command.main(['--data', str(bad), '--output', str(output),
                            '--saved_model', f'a={export_dir}',
                            '--ensemble']) == 2
  assert '--ensemble needs two models or more' in capsys.readouterr().err
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'saved_model.pb').write_bytes(b'not a protobuf')
  good = tmp_path / 'good.csv'
  _write_csv(good, HEADLINES)
  assert errors_command.main(['--data', str(good), '--output', str(output),
                            '--saved_model', f'rnn={broken}']) == 2
  assert f'{broken}: not a SavedModel' in capsys.readouterr().err
  assert not os.path.exists(output)


def test_ensemble_is_the_mean_of_two_models(exported_model, tmp_path):
  from finsent.models import export
  export_dir, model, tft_output = exported_model
  # The same weights at another temperature: other probabilities.
  hotter = str(tmp_path / 'hotter')
  export.export_serving_model(model, tft_output, hotter, temperature=3.0)
  data = tmp_path / 'headlines.csv'
  _write_csv(data, HEADLINES)
  output = tmp_path / 'report'
  assert errors_command.main(['--data', str(data), '--output', str(output),
                            '--saved_model', f'cold={export_dir}',
                            '--saved_model', f'hot={hotter}', '--ensemble',
                            '--top', '6']) == 0
  cold, hot, ensemble = json.loads(
      (output / 'errors.json').read_text())['models']
  texts = [text for text, _ in HEADLINES]
  mean = (error_report.predict(export_dir, texts) +
          error_report.predict(hotter, texts)) / 2
  expected = error_report.summarise('ensemble', f'{export_dir} + {hotter}',
                                    _records(HEADLINES), mean, top=6)
  assert ensemble == json.loads(json.dumps(dataclasses.asdict(expected)))
  assert ensemble['expected_calibration_error'] not in (
      cold['expected_calibration_error'], hot['expected_calibration_error'])
