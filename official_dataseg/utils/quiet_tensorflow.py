"""Imported before TensorFlow by every entry point: Keras 2 (tf_keras) and a quiet start-up.

TensorFlow's C++ start-up lines (`cudart_stub`, `cpu_feature_guard`, oneDNN notices) are printed
while `import tensorflow` runs, before any Python logging setting can act, so the environment must
say so first. Both packages' `__init__` import this module, so `python -m tfrecords_tools.X`,
`python -m official_dataseg...`, `train.py` and the tools all start quietly. A value the user set
wins: `TF_CPP_MIN_LOG_LEVEL=0` brings the lines back. Level 3: on a machine without a GPU
TensorFlow also logs start-up notices at error level (`cuInit`, oneDNN's AVX-512 fallback).
"""
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
