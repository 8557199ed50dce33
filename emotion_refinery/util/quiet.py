"""TensorFlow's own chatter kept off the terminal unless asked for (``emorefine --verbose``).

TensorFlow 2.21 logs through Abseil. The lines it writes while its libraries load (``port.cc:153] oneDNN
custom operations are on``, ``cudart_stub.cc … Could not find cuda drivers``) come before Abseil's logging is
initialised, and Abseil then writes every message to standard error whatever ``TF_CPP_MIN_LOG_LEVEL`` says
(with the ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`` line).
Later lines (``cuda_platform.cc … failed call to cuInit``, an error; ``util.cc … oneDNN supports DT_HALF``)
do honour ``TF_CPP_MIN_LOG_LEVEL``, but level 2 still lets errors through. So, unless verbose:

* ``TF_CPP_MIN_LOG_LEVEL`` is 3 (a value the user set is kept);
* the first ``import tensorflow`` of the process, wherever it happens, runs with file descriptor 2 on a
  temporary file: what it wrote is dropped, or replayed on standard error if the import failed;
* TensorFlow's Python logger (retracing warnings and the like) shows errors only.

Spawned worker processes inherit the environment; their start-up calls :func:`install` again
(:data:`VERBOSE_ENV` tells them whether to).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import sys
import tempfile

__all__ = ["configure", "install", "VERBOSE_ENV", "silenced_stderr"]

#: Set to 1 by ``emorefine --verbose`` (or by the user) to keep TensorFlow's log lines.
VERBOSE_ENV = "EMOREFINE_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


_SET_LEVEL = False  # whether install() set TF_CPP_MIN_LOG_LEVEL (configure(True) then takes it back)


def configure(is_verbose: bool) -> None:
    """Set this process (and the processes it starts) quiet, or verbose: TensorFlow's C++ and Python logs.
    Verbose after quiet (``emorefine COMMAND --verbose``) undoes what :func:`install` did, as long as
    TensorFlow is not imported yet."""
    global _SET_LEVEL
    if is_verbose:
        os.environ[VERBOSE_ENV] = "1"
        if _SET_LEVEL:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
            _SET_LEVEL = False
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietImport)]
        return
    os.environ.setdefault(VERBOSE_ENV, "0")
    install()


def install() -> None:
    """Unless :func:`verbose`: TensorFlow's C++ log level 3, and its first import with standard error
    silenced (see the module docstring). Does nothing when verbose, or once TensorFlow is imported."""
    global _SET_LEVEL
    if verbose():
        return
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        _SET_LEVEL = True
    if "tensorflow" in sys.modules:
        _quiet_python_logger()
        return
    if not any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


@contextlib.contextmanager
def silenced_stderr():
    """File descriptor 2 on a temporary file for the block (C and C++ code writes there too); what was written
    is replayed on standard error if the block raises."""
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to silence
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                capture.seek(0)
                with contextlib.suppress(OSError):
                    os.write(2, capture.read())


def _quiet_python_logger() -> None:
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` the first time it is imported and wraps its loading in :func:`silenced_stderr`
    (the module and its spec stay TensorFlow's own); then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module):
            try:
                with silenced_stderr():
                    run(module)
            finally:
                with contextlib.suppress(AttributeError):
                    del loader.exec_module  # the loader's own method again
            _quiet_python_logger()

        loader.exec_module = exec_module
        return spec
