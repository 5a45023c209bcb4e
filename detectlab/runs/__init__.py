"""Training runs: a SQLite history that lasts, a queue, and worker processes."""

from detectlab.runs.manager import RunManager, describe_exit
from detectlab.runs.store import RunRecord, RunStore

__all__ = ["RunManager", "RunRecord", "RunStore", "describe_exit"]
