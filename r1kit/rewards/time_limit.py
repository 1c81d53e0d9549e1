"""Calling a function with a hard time limit, from any thread.

In the main thread a SIGALRM timer interrupts the call (:func:`with_alarm`); signals reach only the
main thread, so elsewhere (reward worker threads, Ray actors' threads) the call runs in a killable
child Python process (:class:`HelperProcess`), which is replaced when it hangs past the limit.
:func:`call_with_time_limit` picks the right one. Used by the math reward's equivalence check,
whose symbolic work can take unbounded time on adversarial answers.
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class Deadline(BaseException):
    """Raised by the SIGALRM handler. A BaseException so that a library's ``except Exception``
    does not swallow it."""


def with_alarm(fn, timeout_s: float):
    """Run ``fn()`` in the main thread with a SIGALRM deadline; raises TimeoutError when it passes.

    The timer repeats every 50 ms after the deadline, in case some library code swallows the
    first interruption. The caller's SIGALRM handler and timer are restored (the timer with
    its remaining time).
    """
    state = {"armed": True, "restored": False}

    def on_alarm(signum, frame):
        if state["armed"]:
            raise Deadline()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout_s, 0.05)
    started = time.monotonic()

    def restore():
        state["armed"] = False
        if state["restored"]:
            return
        state["restored"] = True
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = max(old_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)

    try:
        try:
            return fn()
        finally:
            restore()
    except Deadline:
        restore()
        raise TimeoutError(f"no result within {timeout_s:g} s") from None


def _resolve(target: str):
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


class HelperProcess:
    """A child Python process that calls ``target`` (``"module:function"``) for threads that cannot
    use signals: one JSON line of arguments in, one JSON reply out, each call under :func:`with_alarm`."""

    GRACE_S = 2.0
    START_TIMEOUT_S = 120.0

    def __init__(self, target: str) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        atexit.register(self.stop)

    def _start(self) -> None:
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        code = f"from r1kit.rewards.time_limit import helper_main; helper_main({self.target!r})"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env)
        if self._read_line(self.START_TIMEOUT_S) != {"ready": True}:
            self.stop()
            raise RuntimeError(f"the helper process for {self.target} did not start")

    def _read_line(self, timeout_s: float):
        """One JSON reply from the child, or None if none comes within ``timeout_s``."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def stop(self) -> None:
        """Kill the child (if any)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def call(self, args: tuple, timeout_s: float):
        """``target(*args)`` in the child; TimeoutError past the limit (the child is then killed)."""
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write((json.dumps([list(args), timeout_s]) + "\n").encode())
            self.proc.stdin.flush()
            reply = self._read_line(timeout_s + self.GRACE_S)
            if reply is None:
                self.stop()  # hung past the limit (or died): kill it, a fresh one starts next time
                raise TimeoutError(f"no result within {timeout_s:g} s (helper process killed)")
            if "error" in reply:
                raise RuntimeError(reply["error"])
            if reply.get("timeout"):
                raise TimeoutError(f"no result within {timeout_s:g} s")
            return reply["result"]


def helper_main(target: str) -> None:
    """Loop of the helper process: read ``[args, timeout_s]`` lines, answer JSON lines."""
    fn = _resolve(target)  # imported before saying ready, so start-up is not timed
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        args, timeout_s = json.loads(line)
        try:
            reply = {"result": with_alarm(lambda: fn(*args), timeout_s)}
        except TimeoutError:
            reply = {"timeout": True}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def call_with_time_limit(fn, args: tuple, timeout_s: float, helper: HelperProcess):
    """``fn(*args)`` within ``timeout_s`` seconds (TimeoutError otherwise): under SIGALRM in the main
    thread, else in ``helper`` (whose target must be ``fn``)."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return with_alarm(lambda: fn(*args), timeout_s)
    return helper.call(args, timeout_s)
