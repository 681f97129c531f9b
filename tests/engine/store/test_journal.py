"""The fsynced intent journal: durable before return, torn tails ignored, SIGKILL-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.store.intent_journal import IntentJournal, replay


def test_append_durable_when_replayed_then_records_in_order(tmp_path: Path) -> None:
    j = IntentJournal(tmp_path / "j" / "intents.bin")
    recs = [(f"ck-1-{i}.0", "BTC/USDT", "buy", i * 10) for i in range(50)]
    for r in recs[:10]:
        j.append_durable(r)
    j.append_many_durable(recs[10:])
    j.close()
    assert replay(tmp_path / "j" / "intents.bin") == recs
    assert oct(os.stat(tmp_path / "j" / "intents.bin").st_mode & 0o777) == "0o600"


def test_replay_when_tail_torn_or_corrupt_then_stops_at_last_intact_record(tmp_path: Path) -> None:
    path = tmp_path / "intents.bin"
    j = IntentJournal(path)
    for i in range(5):
        j.append_durable(("ck", i))
    j.close()
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # crash mid-write of the last record
    assert [r[1] for r in replay(path)] == [0, 1, 2, 3]
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF  # a corrupt payload fails its CRC
    path.write_bytes(bytes(flipped))
    assert [r[1] for r in replay(path)] == [0, 1, 2, 3]


def test_checkpoint_when_db_has_everything_then_journal_empty(tmp_path: Path) -> None:
    j = IntentJournal(tmp_path / "intents.bin")
    j.append_durable(("a",))
    j.checkpoint()
    j.append_durable(("b",))
    j.close()
    assert replay(tmp_path / "intents.bin") == [("b",)]


def test_sigkill_when_append_returned_then_record_survives(tmp_path: Path) -> None:
    path = tmp_path / "intents.bin"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from engine.store.intent_journal import IntentJournal\n"
        f"j = IntentJournal(Path({str(path)!r}))\n"
        "i = 0\n"
        "while True:\n"
        "    j.append_durable(('ck', i))\n"
        "    print(i, flush=True)\n"
        "    i += 1\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert p.stdout is not None
    acknowledged = -1
    for line in p.stdout:
        acknowledged = int(line)
        if acknowledged >= 200:
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    got = [r[1] for r in replay(path)]
    assert got[: acknowledged + 1] == list(range(acknowledged + 1))  # nothing acked was lost
