"""Imports every module that registers an experiment or a task (train.py, export, tests)."""
# pylint: disable=unused-import
from official.core import task_factory

from official_dataseg.configs import dataseg as dataseg_config
from official_dataseg.tasks import dataseg_task

get_task = task_factory.get_task
