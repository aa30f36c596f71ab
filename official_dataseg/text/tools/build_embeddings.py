r"""Recomputes the shipped embeddings of every built-in vocabulary.

  python -m official_dataseg.text.tools.build_embeddings [--encoder=minilm]

Writes `embeddings/<vocabulary>.<encoder>.npz` beside the vocabularies with
the default templates of `embed.py`: the same result as running
`python -m official_dataseg.text.embed` once per vocabulary, loading the
encoder once.
"""

import argparse
import os
from typing import Optional, Sequence

from official_dataseg.text import embed
from official_dataseg.text import embeddings as embeddings_lib
from official_dataseg.text import vocabulary as vocabulary_lib


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--encoder', choices=embed.ENCODERS, default='minilm')
  parser.add_argument('--clip_preset', default=None)
  parser.add_argument('--vocabularies', nargs='*', default=None,
                      help='subset of built-in vocabularies (default: all)')
  args = parser.parse_args(argv)
  encoder = embed.build_encoder(args.encoder, args.clip_preset)
  os.makedirs(embeddings_lib.EMBEDDINGS_DIR, exist_ok=True)
  for name in args.vocabularies or vocabulary_lib.list_vocabularies():
    vocabulary = vocabulary_lib.load_vocabulary(name)
    class_embeddings = embed.compute_class_embeddings(vocabulary, encoder)
    path = embeddings_lib.shipped_embeddings_path(name, encoder.encoder_id)
    embed.save_embeddings(path, vocabulary.display_names, class_embeddings, encoder.encoder_id,
                          embed.DEFAULT_TEMPLATES)
    print(f'{path}: {class_embeddings.shape}')


if __name__ == '__main__':
  main()
