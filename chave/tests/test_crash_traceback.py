"""A ``chave`` process that dies of a fatal signal (a C library's crash: PKCS#11, libxml2, OpenSSL)
leaves each thread's Python traceback in its log, which is how an operator learns where."""

from __future__ import annotations

import subprocess

from chave.testing.faults import CHAVE, PROJECT, chave_env


def test_a_crashed_chave_process_leaves_a_python_traceback(tmp_path):
    env = chave_env(f"sqlite:///{tmp_path}/chave.sqlite3", tmp_path)
    env.pop("PYTHONFAULTHANDLER", None)  # what the command turns on itself, not the environment
    crash = "import os, signal\ndef in_the_view():\n    os.kill(os.getpid(), signal.SIGSEGV)\nin_the_view()"
    done = subprocess.run([*CHAVE, "shell", "-c", crash], env=env, cwd=PROJECT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -11
    assert "Fatal Python error: Segmentation fault" in done.stderr, done.stderr
    assert "in_the_view" in done.stderr and "chave/cli.py" in done.stderr, done.stderr
