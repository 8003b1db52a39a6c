"""Start-up never fails because of the store: a damaged DATA_DIR/ternd.db is moved aside as
ternd.db.damaged-<UTC stamp>, the reason is logged as an error, and ternd serves with an
empty store that is itself durable."""

from __future__ import annotations

import random
import sqlite3

import pytest

import mqtt_raw as m

DB_NAME = "ternd.db"


def _persistent(client: m.RawClient, client_id: str, clean: bool) -> bool:
    return bool(client.connect(client_id, clean=clean,
                               props={m.SESSION_EXPIRY_INTERVAL: 3600}).session_present)


def _populate(launcher) -> None:
    """A real database: a persistent session with a subscription and queued messages."""
    launcher.start()
    client = m.RawClient("127.0.0.1", launcher.port)
    _persistent(client, "before-damage", clean=True)
    client.subscribe([("damage/t", m.sub_options(qos=1))])
    client.disconnect()
    publisher = m.RawClient("127.0.0.1", launcher.port)
    publisher.connect("damage-pub")
    for n in range(200):
        publisher.publish("damage/t", f"queued {n} ".encode() * 20, qos=1)
    publisher.disconnect()
    launcher.brokers[-1].stop()


def _garbage(launcher, rng: random.Random) -> None:
    launcher.data_dir.mkdir(parents=True, exist_ok=True)
    (launcher.data_dir / DB_NAME).write_bytes(rng.randbytes(rng.randrange(1, 64 * 1024)))


def _truncated(launcher, rng: random.Random) -> None:
    _populate(launcher)
    path = launcher.data_dir / DB_NAME
    data = path.read_bytes()
    assert len(data) > 8192, f"database only {len(data)} bytes, cannot truncate meaningfully"
    # Past the header page, so the file still looks like SQLite but its b-trees are cut.
    path.write_bytes(data[:rng.randrange(4096 + 1, len(data) // 2)])


def _future_version(launcher, rng: random.Random) -> None:
    _populate(launcher)
    with sqlite3.connect(launcher.data_dir / DB_NAME) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        assert version > 0, "the store did not set a schema version"
        db.execute(f"PRAGMA user_version = {version + 1000}")
    db.close()


@pytest.mark.parametrize("damage", [_garbage, _truncated, _future_version],
                         ids=["garbage", "truncated", "future_version"])
def test_damaged_database_is_moved_aside_and_ternd_serves(new_launcher, seed, damage):
    rng = random.Random(seed)
    launcher = new_launcher("damaged")
    damage(launcher, rng)
    damaged_bytes = (launcher.data_dir / DB_NAME).read_bytes()

    broker = launcher.start()
    assert broker.running()
    line = broker.wait_warning("damaged")
    assert "ternd.db.damaged-" in line, line
    moved = sorted(launcher.data_dir.glob(DB_NAME + ".damaged-*"))
    main_files = [p for p in moved if not p.name.endswith(("-wal", "-shm", "-journal"))]
    assert len(main_files) == 1, f"moved aside: {[p.name for p in moved]}"
    assert main_files[0].read_bytes() == damaged_bytes, "the damaged file was altered"
    assert (launcher.data_dir / DB_NAME).exists(), "no new database"

    # It serves, with an empty store: the old session is gone.
    subscriber = m.RawClient("127.0.0.1", launcher.port)
    assert not _persistent(subscriber, "before-damage", clean=False)
    subscriber.disconnect()
    subscriber = m.RawClient("127.0.0.1", launcher.port)
    assert not _persistent(subscriber, "after-damage", clean=True)
    subscriber.subscribe([("fresh/t", m.sub_options(qos=1))])
    publisher = m.RawClient("127.0.0.1", launcher.port)
    publisher.connect("fresh-pub")
    publisher.publish("fresh/t", b"live", qos=1)
    assert subscriber.recv_publish().payload == b"live"
    subscriber.disconnect()
    publisher.publish("fresh/t", b"kept", qos=1)
    publisher.disconnect()

    # The new store is durable: the session and its queued message survive SIGKILL.
    broker.kill()
    launcher.start()
    subscriber = m.RawClient("127.0.0.1", launcher.port)
    assert _persistent(subscriber, "after-damage", clean=False), "the new store lost the session"
    assert subscriber.recv_publish().payload == b"kept"
    subscriber.disconnect()
    # Only the one damaged file set was moved aside; the new database was accepted.
    assert sorted(launcher.data_dir.glob(DB_NAME + ".damaged-*")) == moved
