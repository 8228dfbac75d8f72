"""The default output of the entry points: no library deprecation notices.

A user of la_keras cannot act on the deprecation notices that TensorFlow
Datasets, Keras or JAX print about their own internals (e.g. TFDS's partial
decoding logs "`FeatureConnector.dtype` is deprecated" twice a run), so the
entry points hide them unless --verbosity is given (`cli.app_run`).
"""

from __future__ import annotations

import logging
import os
import warnings

from absl import logging as absl_logging

import la_keras

_OURS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (la_keras.__file__, __file__)
)


class LibraryDeprecations(logging.Filter):
    """Drops log records about a deprecation, unless la_keras logs them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "deprecat" not in record.getMessage().lower():
            return True
        return os.path.abspath(record.pathname).startswith(_OURS)


def hide_library_deprecations() -> None:
    """Keeps other libraries' deprecation notices out of the output.

    Both kinds: Python `warnings` (DeprecationWarning, its pending form, and
    FutureWarnings that announce a deprecation) and records logged through
    absl or Python logging (a filter on the root handlers and on absl's
    logger).
    """
    for category in (DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings(
        "ignore", message=r"(?s).*deprecat", category=FutureWarning
    )
    deprecations = LibraryDeprecations()
    for handler in logging.getLogger().handlers:
        handler.addFilter(deprecations)
    absl_logging.get_absl_logger().addFilter(deprecations)
