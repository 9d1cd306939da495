"""A process's first PIN checks arriving together, as they do when a web server starts under load.

Each thread asks for the HSM adapter, which loads and initialises the PKCS#11 module on first use.
Before every use of the module went through one lock (``chave.signing.hsm.MODULE_LOCK``), the
threads initialised it over one another: SoftHSM2 answered "not initialized" (a 500 for the
citizen) or the whole process died of a segmentation fault, every time with eight threads.

A fresh process is the only place a first use happens, so the checks run in ``chave shell``.
"""

from __future__ import annotations

import subprocess

from chave.testing.faults import CHAVE, PROJECT, chave_env, run_chave

PIN = "4719"
THREADS = 8

RACE = """
import threading
from chave.identity import pins
stored = open({stored!r}).read()
barrier = threading.Barrier({threads})
answers = []
def check():
    barrier.wait()
    try:
        answers.append(pins.verify(stored, {pin!r})[0])
    except Exception as e:
        answers.append(type(e).__name__ + ": " + str(e))
threads = [threading.Thread(target=check) for _ in range({threads})]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ANSWERS", answers)
"""


def test_a_fresh_process_checks_pins_in_eight_threads_at_once(tmp_path):
    env = chave_env(f"sqlite:///{tmp_path}/chave.sqlite3", tmp_path)
    stored = tmp_path / "stored-hash"
    # The token, the pepper key and a hash of the PIN, made by another process.
    run_chave(env, "shell", "-c",
              f"from chave.identity import pins; open({str(stored)!r}, 'w').write(pins.hash_pin({PIN!r}))")

    for _ in range(4):  # without the lock, nineteen such processes in twenty failed
        done = subprocess.run([*CHAVE, "shell", "-c", RACE.format(stored=str(stored), threads=THREADS, pin=PIN)],
                              env=env, cwd=PROJECT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]  # -11: the process crashed
        assert f"ANSWERS {[True] * THREADS}" in done.stdout, done.stdout[-3000:]
