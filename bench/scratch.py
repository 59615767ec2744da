"""The argument parser of a benchmark that makes its scratch directory when it is imported.

Such a benchmark has made the directory before its arguments are read; a
--help, a usage error or a later ``parser.error`` (a bad range) ends the
process through ``ArgumentParser.exit``, which here removes the directory
first. It is still empty then, and only ever removed empty: nothing of a run
that got further is lost.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any, NoReturn


class ScratchParser(argparse.ArgumentParser):
    """An ArgumentParser that removes ``scratch`` (if empty) when it ends the process."""

    def __init__(self, scratch: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scratch = scratch

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        with contextlib.suppress(OSError):
            os.rmdir(self.scratch)
        super().exit(status, message)
