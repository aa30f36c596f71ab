"""The command-line pattern every converter shares.

  python -m tfrecords_tools.<dataset> --images_dir DIR --annotations PATH \
      --output_prefix PREFIX [--num_shards N] [--num_workers K] [--strict] \
      [--max_skip_fraction F] [--overwrite] \
      [--runner local|DirectRunner|DataflowRunner|FlinkRunner|SparkRunner] \
      [Beam pipeline options, e.g. --direct_num_workers=2 --project=P ...]

Each converter adds its own flags to `base_parser(...)` and calls
`run_main(parser, convert_fn, argv)`. With a Beam --runner, every flag the
parser does not know is a Beam pipeline option and goes to Beam as is (see
docs/datasets.md; one that Beam does not know either is an error); with
--runner=local an unknown flag is an error.
"""

import argparse
import json
import sys
from typing import Callable, Optional, Sequence

from tfrecords_tools import tfrecord_writer


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
  """Keeps the module docstring's layout and shows flag defaults."""


def base_parser(description: str, annotations_help: str,
                images_dir_help: str = 'Folder holding the images.'
                ) -> argparse.ArgumentParser:
  """Returns a parser with the flags every converter takes."""
  parser = argparse.ArgumentParser(
      description=description,
      formatter_class=_HelpFormatter,
      # Unknown flags may be Beam options: none may pass for an abbreviation.
      allow_abbrev=False)
  parser.add_argument('--images_dir', required=True, help=images_dir_help)
  parser.add_argument('--annotations', required=True, help=annotations_help)
  parser.add_argument(
      '--output_prefix', required=True,
      help='Output path prefix: writes PREFIX-0000i-of-0000N.tfrecord, '
      'PREFIX-vocabulary.json, PREFIX-category_frequency.json, '
      'PREFIX-report.json and, last, PREFIX-manifest.json.')
  parser.add_argument('--num_shards', type=int, default=1,
                      help='Number of output TFRecord shards.')
  parser.add_argument(
      '--num_workers', type=int, default=0,
      help='Worker processes (0 = convert in the main process); with a Beam '
      '--runner, passed to Beam as --num_workers (Dataflow workers). The '
      'output does not depend on it.')
  parser.add_argument(
      '--runner', default=tfrecord_writer.LOCAL_RUNNER,
      choices=(tfrecord_writer.LOCAL_RUNNER,) + tfrecord_writer.BEAM_RUNNERS,
      help='Where to convert: "local" (this machine, --num_workers '
      'processes) or an Apache Beam runner (needs the beam extra; unknown '
      'flags are passed to Beam as pipeline options). The output files are '
      'the same.')
  parser.add_argument(
      '--strict', action='store_true',
      help='Fail on the first skipped image, dropped object or repaired '
      'pixel instead of counting it in the report.')
  parser.add_argument(
      '--max_skip_fraction', type=float,
      default=tfrecord_writer.DEFAULT_MAX_SKIP_FRACTION,
      help='Fail (exit 1, nothing written) when more than this fraction of '
      'the images is skipped (missing, unreadable, ...); a run that writes no '
      'image always fails.')
  parser.add_argument(
      '--overwrite', action='store_true',
      help='Remove the outputs of a previous run with the same '
      '--output_prefix first (without it they are an error).')
  parser.add_argument('--quiet', action='store_true',
                      help='No progress line on stderr.')
  return parser


def run_main(parser: argparse.ArgumentParser, convert_fn: Callable[..., dict],
             argv: Optional[Sequence[str]] = None) -> int:
  """Parses argv, calls `convert_fn(**flags)` and prints a summary.

  Returns:
    Process exit status: 0 on success, 1 on a ConversionError (the message
    names the file and field at fault, or sums up the skip reasons).
  """
  known, unknown = parser.parse_known_args(argv)
  flags = vars(known)
  if unknown and flags['runner'] == tfrecord_writer.LOCAL_RUNNER:
    parser.error(f'unrecognized arguments: {" ".join(unknown)} (Beam '
                 'pipeline options need a Beam --runner)')
  if unknown:
    flags['beam_options'] = unknown
  flags['show_progress'] = not flags.pop('quiet')
  try:
    report = convert_fn(**flags)
  except tfrecord_writer.ConversionError as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  summary = {key: report[key] for key in (
      'images_written', 'images_skipped', 'objects_written', 'objects_dropped')}
  print(json.dumps(summary, sort_keys=True))
  return 0
