"""Handing items between the threads of a pipeline (decode -> restore -> encode) through
bounded queues, so that a stop request is never missed while a queue is full."""

from __future__ import annotations

import queue
import threading
from typing import Any


def put_unless_stopped(q: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put ``item`` on ``q``, waiting while it is full; False (nothing put) once ``stop`` is
    set, so a stage blocked on a full queue ends when the run is aborted."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
