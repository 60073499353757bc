# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the in-process tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo ``configure_logging``: root handlers, level and structlog's configuration."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


class CrashReports(list[BaseException]):
    """What ``report_unexpected`` handed to the process's crash reporter, in order."""

    def __call__(self, exc: BaseException) -> None:
        self.append(exc)


@pytest.fixture
def crash_reports() -> Iterator[CrashReports]:
    """A crash reporter recording every report, installed for one test."""
    from genkit_endpoints.core.crash import install_reporter, remove_reporter

    reports = CrashReports()
    previous = install_reporter(reports)
    try:
        yield reports
    finally:
        remove_reporter(reports)
        install_reporter(previous)
