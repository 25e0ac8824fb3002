"""The service's counters, in the Prometheus text format (served at /metrics).

Hand-written (a few counters, gauges and one histogram) rather than a client library: no
dependency for ~80 lines, and the format is fixed (text exposition format 0.0.4).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

#: Upper bounds (seconds) of the latency histogram's buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Requests by route and status, latency by route, megapixels restored; gauges read at
    scrape time from ``gauges`` (name -> (help, function))."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self.megapixels = 0.0
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(route, status)] += 1
            buckets = self._buckets.setdefault(route, [0] * len(LATENCY_BUCKETS))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self._sums[route] += seconds
            self._counts[route] += 1

    def restored(self, megapixels: float) -> None:
        with self._lock:
            self.megapixels += megapixels

    def render(self) -> str:
        lines = [
            "# HELP scn_requests_total HTTP requests by route and status.",
            "# TYPE scn_requests_total counter",
        ]
        with self._lock:
            for (route, status), count in sorted(self._requests.items()):
                lines.append(f'scn_requests_total{{route="{route}",status="{status}"}} {count}')
            lines += [
                "# HELP scn_request_seconds Request latency by route.",
                "# TYPE scn_request_seconds histogram",
            ]
            for route, buckets in sorted(self._buckets.items()):
                for bound, count in zip(LATENCY_BUCKETS, buckets, strict=True):
                    lines.append(
                        f'scn_request_seconds_bucket{{route="{route}",le="{bound:g}"}} {count}'
                    )
                total = self._counts[route]
                lines.append(f'scn_request_seconds_bucket{{route="{route}",le="+Inf"}} {total}')
                lines.append(f'scn_request_seconds_sum{{route="{route}"}} {self._sums[route]:.6f}')
                lines.append(f'scn_request_seconds_count{{route="{route}"}} {total}')
            lines += [
                "# HELP scn_megapixels_restored_total Output megapixels restored.",
                "# TYPE scn_megapixels_restored_total counter",
                f"scn_megapixels_restored_total {self.megapixels:.6f}",
            ]
        for name, (help_text, read) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"
