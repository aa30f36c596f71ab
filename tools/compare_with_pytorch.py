r"""Runs this project's benchmark and the PyTorch reference's, interleaved, and prints one table.

  python tools/compare_with_pytorch.py                   # 512x512 batch 2, inference 512 and 1024
  python tools/compare_with_pytorch.py --rounds=1 --image_size=256 --inference_sizes=256 --runs=1
  python tools/compare_with_pytorch.py --torch_python=/path/to/torch-venv/bin/python

Each round runs `tools/benchmark_train_step.py` (TensorFlow, this project) and then
`tools/benchmark_pytorch_reference.py` (Hugging Face Mask2Former rebuilt as DaTaSeg, see that file
and docs/performance.md) as separate processes with the same settings, one after the other, so
with `--rounds=2` the order is TF, torch, TF, torch and a change of machine load shows up on both
sides. The table gives the median over rounds of each tool's median, and the ratios
ours / reference: for times (< 1: this project is faster) and for train images/s (> 1: faster).
The child processes' output is shown as they run; `--json_output` keeps every figure.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMING = re.compile(r'^\s+(train_step|inference (\d+)x\d+ batch 1)\s+([0-9.]+) s')
_PEAK = re.compile(r'float32 2048\^3 matmul: ([0-9.]+) GFLOP/s')


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--image_size', type=int, default=512)
  parser.add_argument('--batch_size', type=int, default=2)
  parser.add_argument('--num_objects', type=int, default=10)
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--runs', type=int, default=5)
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--inference_sizes', default='512,1024')
  parser.add_argument('--rounds', type=int, default=2, help='TF, torch pairs to run.')
  parser.add_argument('--parts', dest='parts', action='store_true', default=True,
                      help='Let both tools also time the parts of the step (slower).')
  parser.add_argument('--noparts', dest='parts', action='store_false')
  parser.add_argument('--tf_python', default=sys.executable,
                      help='Interpreter with TensorFlow and this project.')
  parser.add_argument('--torch_python', default=sys.executable,
                      help='Interpreter with torch, transformers and scipy.')
  parser.add_argument('--reference_args', default='',
                      help="Extra flags for the reference, e.g. '--channels_last --fpn_norm=batch'.")
  parser.add_argument('--json_output', default='')
  return parser.parse_args(argv)


def run(command, env):
  """Runs a benchmark, echoing its output; returns the output."""
  print('$ ' + ' '.join(command), flush=True)
  lines = []
  with subprocess.Popen(command, cwd=_REPO, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True) as process:
    for line in process.stdout:
      sys.stdout.write(line)
      sys.stdout.flush()
      lines.append(line)
  if process.returncode:
    raise SystemExit(f'{command[1]} failed with exit status {process.returncode}')
  return ''.join(lines)


def parse_timings(output):
  """{'train_step': s, 'inference 512': s, ..., 'matmul_gflops': x} from a tool's output."""
  figures = {}
  for line in output.splitlines():
    timing = _TIMING.match(line)
    if timing:
      name = 'train_step' if timing.group(1) == 'train_step' else f'inference {timing.group(2)}'
      figures[name] = float(timing.group(3))
    peak = _PEAK.search(line)
    if peak:
      figures['matmul_gflops'] = float(peak.group(1))
  return figures


def main(argv=None):
  args = parse_args(argv)
  common = [f'--image_size={args.image_size}', f'--batch_size={args.batch_size}',
            f'--num_objects={args.num_objects}', f'--threads={args.threads}',
            f'--runs={args.runs}', f'--warmup={args.warmup}',
            f'--inference_sizes={args.inference_sizes}',
            '--parts' if args.parts else '--noparts']
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(p for p in (_REPO, env.get('PYTHONPATH')) if p)
  env.setdefault('TF_USE_LEGACY_KERAS', '1')
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  env.setdefault('HF_HUB_OFFLINE', '1')
  rounds = {'ours': [], 'reference': []}
  with tempfile.TemporaryDirectory() as scratch:
    for index in range(args.rounds):
      print(f'\n=== round {index + 1} of {args.rounds}: TensorFlow (this project) ===', flush=True)
      rounds['ours'].append(parse_timings(run(
          [args.tf_python, 'tools/benchmark_train_step.py'] + common, env)))
      print(f'\n=== round {index + 1} of {args.rounds}: PyTorch reference ===', flush=True)
      json_path = os.path.join(scratch, f'reference_{index}.json')
      output = run([args.torch_python, 'tools/benchmark_pytorch_reference.py'] + common
                   + args.reference_args.split() + [f'--json_output={json_path}'], env)
      figures = parse_timings(output)
      with open(json_path) as f:
        details = json.load(f)
      figures['params'] = details['params']['total']
      rounds['reference'].append(figures)

  columns = ['train_step'] + [f'inference {s.strip()}'
                              for s in args.inference_sizes.split(',') if s.strip()]
  for side, results in rounds.items():
    for figures in results:
      missing = [c for c in columns if c not in figures]
      if missing:
        raise SystemExit(f'{side}: no {missing} in the tool\'s output (its format changed?)')
  medians = {side: {c: statistics.median(r[c] for r in results)
                    for c in columns + ['matmul_gflops'] if all(c in r for r in results)}
             for side, results in rounds.items()}
  print(f'\n=== {args.rounds} round(s), {args.image_size}x{args.image_size} batch '
        f'{args.batch_size} for the train step, batch 1 for inference, {args.threads} threads, '
        f'median of {args.runs} after {args.warmup} warm-up; median over rounds ===')
  header = (['', 'train step (s)', 'train images/s'] + [f'{c}² (s)' for c in columns[1:]]
            + ['matmul GFLOP/s'])
  rows = []
  for side, label in (('ours', 'this project (TensorFlow)'),
                      ('reference', 'PyTorch reference (HF Mask2Former as DaTaSeg)')):
    m = medians[side]
    rows.append([label, f'{m["train_step"]:.3f}',
                 f'{args.batch_size / m["train_step"]:.3f}']
                + [f'{m[c]:.3f}' if c in m else 'n/a' for c in columns[1:]]
                + [f'{m.get("matmul_gflops", float("nan")):.1f}'])
  ours, ref = medians['ours'], medians['reference']
  rows.append(['ours / reference (time; < 1 = ours faster)',
               f'{ours["train_step"] / ref["train_step"]:.2f}x',
               f'{ref["train_step"] / ours["train_step"]:.2f}x']
              + [f'{ours[c] / ref[c]:.2f}x' if c in ours and c in ref else 'n/a'
                 for c in columns[1:]] + [''])
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for row in rows:
    print('| ' + ' | '.join(row) + ' |')
  print('(train images/s ratio in the last row: ours / reference, > 1 = ours faster)')
  for side in ('ours', 'reference'):
    for c in columns:
      values = [r.get(c) for r in rounds[side]]
      print(f'  per round, {side:9s} {c:15s}: ' + ', '.join(
          'n/a' if v is None else f'{v:.3f}' for v in values))
  if rounds['reference']:
    print(f'  reference parameters: {rounds["reference"][0]["params"] / 1e6:.2f} M '
          '(this project: python tools/model_summary.py --backbones=r50)')
  if args.json_output:
    with open(args.json_output, 'w') as f:
      json.dump({'settings': vars(args), 'rounds': rounds, 'medians': medians}, f, indent=1)


if __name__ == '__main__':
  main()
