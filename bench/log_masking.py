# SPDX-License-Identifier: Apache-2.0
"""How long the secret masker takes per access-log event (it runs on every request).

Prints microseconds per event for a typical access-log event, with and without
registered secrets; it measures, it does not pass or fail.

    uv run --all-extras python bench/log_masking.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from genkit_endpoints import SecretMasker

EVENT = {
    "event": "request", "method": "POST", "route": "/tell-joke", "status": 200,
    "duration_ms": 1.234, "bytes": 120, "client_ip": "127.0.0.1", "principal": "ci",
    "request_id": "0123456789abcdef0123456789abcdef", "level": "info",
    "logger": "genkit_endpoints.access", "timestamp": "2025-01-01T00:00:00.000000Z",
}  # fmt: skip


def per_event_us(masker: SecretMasker, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        masker(None, "info", dict(EVENT))
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000, help="events per sample")
    parser.add_argument("--samples", type=int, default=5, help="samples; the median is shown")
    args = parser.parse_args()
    maskers = {
        "no registered secrets": SecretMasker([]),
        "two registered secrets": SecretMasker(
            ["plain-configured-key-0042", "another-configured-key"]
        ),
    }
    for name, masker in maskers.items():
        samples = [per_event_us(masker, args.rounds) for _ in range(args.samples)]
        print(f"{name}: {statistics.median(samples):.2f} µs per access-log event")


if __name__ == "__main__":
    main()
