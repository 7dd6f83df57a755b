"""Data for chapter 04 onwards: toy sequence tasks and a character corpus read from the local
Python installation (no download, nothing copied into the repository)."""
from .toy import (IGNORE_INDEX, SEP, associative_recall, copy_task, reverse_task, sequence_accuracy,
                  sort_task, task_batch_fn)
from .corpus import DEFAULT_FILES, CharCorpus, stdlib_text

__all__ = ["IGNORE_INDEX", "SEP", "copy_task", "reverse_task", "sort_task", "associative_recall",
           "task_batch_fn", "sequence_accuracy", "CharCorpus", "DEFAULT_FILES", "stdlib_text"]
