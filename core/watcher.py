"""Hot reload: watch template directories with watchdog and report changed files.

The watchdog observer thread only enqueues paths; one worker thread applies them, so reloads are
serialized and a slow reload never blocks the observer. A burst of events (an editor truncating,
writing and closing a file; an atomic rename) is coalesced: the worker waits until no event has
arrived for `settle_s` before reloading each distinct path once. That window is the only delay
between a write and the new content being served.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from core.loader import is_template_file

_STOP = Path("\0stop")
_log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: queue.Queue[Path]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        for raw in paths:
            path = Path(raw if isinstance(raw, str) else raw.decode())
            if is_template_file(path):
                self._sink.put(path)


class TemplateWatcher:
    """Calls `on_change(path)` from a worker thread for each template file that changed."""

    def __init__(
        self,
        directories: Iterable[Path],
        on_change: Callable[[Path], Any],
        *,
        settle_s: float = 0.02,
    ) -> None:
        self._queue: queue.Queue[Path] = queue.Queue()
        self._on_change = on_change
        self._settle_s = settle_s
        self._observer = Observer()
        handler = _Handler(self._queue)
        for directory in {d.resolve() for d in directories if d.is_dir()}:
            self._observer.schedule(handler, str(directory), recursive=False)
        self._worker = threading.Thread(target=self._run, name="template-reload", daemon=True)

    def start(self) -> None:
        self._observer.start()
        self._worker.start()

    def stop(self) -> None:
        self._observer.stop()
        self._queue.put(_STOP)
        self._observer.join(timeout=5)
        if self._worker.is_alive():
            self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            pending = [first]
            stopping = False
            while True:  # coalesce the burst
                try:
                    item = self._queue.get(timeout=self._settle_s)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                pending.append(item)
            for path in dict.fromkeys(pending):
                try:
                    self._on_change(path)
                except Exception:  # a reload bug must not stop later reloads
                    _log.exception("reloading %s failed", path)
            if stopping:
                return
