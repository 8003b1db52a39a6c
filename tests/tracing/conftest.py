from __future__ import annotations

import pytest

from tracekit import SpanReceiver, start_ternd  # first: puts tests/integration on the path
from helpers import close_all_clients  # noqa: E402


@pytest.fixture
def receiver():
    r = SpanReceiver()
    yield r
    r.close()


@pytest.fixture
def ternd_factory(tmp_path):
    """start(config_toml=None) -> Ternd; every ternd started is stopped and must exit 0."""
    started = []

    def start(config_toml: str | None = None):
        t = start_ternd(tmp_path, config_toml, len(started))
        started.append(t)
        return t

    yield start
    close_all_clients()
    problems = []
    for t in started:
        code = t.stop()
        if code != 0:
            problems.append(f"ternd exited with {code}:\n" + t.log_tail())
    if problems:
        pytest.fail("\n".join(problems))
