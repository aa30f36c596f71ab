"""Setuptools entry point; the package metadata is in setup.cfg.

Kept for tools that want a `setup.py`, e.g. Apache Beam's `--setup_file ./setup.py`, which
builds this package and installs it on Dataflow workers (docs/datasets.md).
"""

import setuptools

setuptools.setup()
