"""Error lines of the real ternd persisted to the configured error file (rotation is
covered by tests/unit/core/log_error_file_test.cpp)."""

from __future__ import annotations

import json
import subprocess

from tracekit import ternd_path


def test_error_lines_reach_the_error_file_and_other_levels_do_not(tmp_path, ternd_factory):
    error_file = tmp_path / "errors.log"
    data_dir = tmp_path / "data"
    (data_dir / "ternd.db").mkdir(parents=True)  # a directory where the database should be
    ternd = ternd_factory(f'data_dir = "{data_dir}"\n'
                          f'[log]\nerror_file = "{error_file}"\nerror_file_max_bytes = 65536\nerror_file_keep = 2\n')
    # ternd serves MQTT with its state in memory and says so at level error.
    ternd.paho("error-file-client")
    assert ternd.stop() == 0
    logged = [json.loads(l) for l in ternd.log_text().splitlines() if l.startswith("{")]
    assert any(l["level"] == "info" for l in logged) and any(l["level"] == "debug" for l in logged)
    persisted = [json.loads(l) for l in error_file.read_text().splitlines()]
    assert persisted, "no error line was persisted"
    assert all(l["level"] == "error" for l in persisted)
    assert any("cannot open the store" in l["msg"] for l in persisted)
    assert len(persisted) == sum(1 for l in logged if l["level"] == "error")


def test_an_error_file_setting_is_checked(tmp_path):
    config = tmp_path / "ternd.toml"
    config.write_text('[log]\nerror_file = "/tmp/x.log"\nerror_file_max_bytes = 10\n')
    result = subprocess.run([ternd_path(), "--config", str(config), "--check-config"], capture_output=True,
                            timeout=30)
    assert result.returncode != 0
    assert b"log.error_file_max_bytes must be between 4096" in result.stderr
