"""Where training runs live on disk: the one owner of run ids, run folders, checkpoint paths and
the runs database path.

Layout under a runs folder (default ``DETECTLAB_HOME/runs``)::

    <run id>/model.safetensors          one run (its best checkpoint, rewritten at every better epoch)
    <run id>/splits.json
    <run id>/run<k>/model.safetensors   repeated runs (seeds seed, seed+1, ...), one sub-folder each
    <run id>.log                        the worker process's output

and the history database at ``DETECTLAB_HOME/runs.sqlite``. The engine writes here, the worker
and the manager find checkpoints here, the CLI and the catalogue read here.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from detectlab import config

CHECKPOINT_NAME = "model.safetensors"


def new_run_id() -> str:
    """Sortable, unique run id: start time plus a random suffix."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


#: What ``new_run_id`` makes.
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def runs_db(home: Path | None = None) -> Path:
    """The run-history database (``runs.sqlite`` under DetectLab's home)."""
    return Path(home or config.home()) / "runs.sqlite"


@dataclass(frozen=True)
class RunLayout:
    """Paths of runs under one runs folder."""

    root: Path

    @classmethod
    def default(cls, home: Path | None = None) -> "RunLayout":
        return cls(Path(home or config.home()) / "runs")

    @classmethod
    def of(cls, out_dir: str | Path | None) -> "RunLayout":
        """The layout of a config's ``out_dir`` (the default runs folder when it is empty)."""
        return cls(Path(out_dir)) if out_dir else cls.default()

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def repeat_dir(self, run_id: str, k: int = 0, repeats: int = 1) -> Path:
        """Folder of the ``k``-th of ``repeats`` runs (the run folder itself for a single run)."""
        return self.run_dir(run_id) if repeats == 1 else self.run_dir(run_id) / f"run{k}"

    def checkpoint(self, run_id: str, k: int = 0, repeats: int = 1) -> Path:
        return self.repeat_dir(run_id, k, repeats) / CHECKPOINT_NAME

    def saved_checkpoint(self, run_id: str) -> Path | None:
        """The checkpoint a run has written so far (the first repeat's for repeated runs), or None.

        Used after a worker died: whatever the run's repeat count, its best model is found.
        """
        for path in (self.checkpoint(run_id), self.checkpoint(run_id, 0, 2)):
            if path.exists():
                return path
        return None

    def log(self, run_id: str) -> Path:
        return self.root / f"{run_id}.log"
