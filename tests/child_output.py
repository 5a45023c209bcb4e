"""A child process's output, read line by line in a thread and searchable while the child runs
(shared by the tests that start the app or the CLI as a subprocess)."""

from __future__ import annotations

import re
import threading


class ChildOutput:
    """Collects a stream's lines as they come; ``wait_for`` wakes on each new line (no polling, no sleeps)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        """The first match of ``pattern`` in the output so far; None when the stream closes without one, or
        at ``timeout``."""
        found: list[re.Match | None] = [None]

        def seen() -> bool:
            found[0] = re.search(pattern, self.text)
            return found[0] is not None or self.closed  # a closed stream: nothing more will come

        with self._changed:
            self._changed.wait_for(seen, timeout)
        return found[0]
