"""Running one untrusted Python program in a sandbox: :func:`run_code` (see :mod:`r1kit.sandbox`)."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from r1kit.sandbox._launcher import kill_uid

LAUNCHER = str(Path(__file__).with_name("_launcher.py"))
STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "killed", "sandbox_error")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
UID_BASE = int(os.environ.get("R1KIT_SANDBOX_UID_BASE", "65000"))
"""First uid (and gid) of the sandbox's range; each concurrent run gets one of its own."""
UID_COUNT = int(os.environ.get("R1KIT_SANDBOX_UID_COUNT", "500"))
"""Size of that range: at most this many runs at once on one machine (all processes together)."""
KILL_GRACE_S = 2.0
"""After asking the launcher to stop the program, how long to wait before killing it too."""
_MEMORY_PATTERN = re.compile(r"\bMemoryError\b|Cannot allocate memory|std::bad_alloc|out of memory")


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): misconfiguration, no free uid, set-up error."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed run. Sizes are in MiB; every limit applies to the program and
    to each process it starts (RLIMIT_* values), except where said otherwise."""

    wall_s: float = 5.0
    """Wall-clock time of the whole run, interpreter start-up included; then it is killed."""
    cpu_s: float = 5.0
    """CPU time per process (RLIMIT_CPU, rounded up to whole seconds)."""
    memory_mb: int = 512
    """Address space per process (RLIMIT_AS); allocating more raises MemoryError."""
    file_size_mb: int = 10
    """Largest file a process may write (RLIMIT_FSIZE)."""
    disk_mb: int = 64
    """Size of the private work directory (a tmpfs; only where mount namespaces are available)."""
    max_processes: int = 16
    """Processes and threads of the run together (RLIMIT_NPROC of its own uid): no fork bombs."""
    max_open_files: int = 64
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    max_output_bytes: int = 1 << 20
    """Captured bytes of stdout and of stderr each; a program writing more is stopped (output_limit)."""
    namespaces: bool = True
    """Use namespaces (network, mount, PID, IPC, UTS); False forces the fallback (for tests)."""
    require_isolation: bool = False
    """Refuse to run (sandbox_error) unless the network, filesystem and PID isolation all hold."""


@dataclass
class ExecResult:
    """Outcome of one sandboxed run.

    ``status``: ``ok`` (exit code 0), ``error`` (non-zero exit, e.g. an uncaught exception),
    ``timeout`` (wall-clock or CPU limit), ``memory`` (memory limit), ``output_limit`` (too much
    output: stopped), ``killed`` (ended by a signal, e.g. it killed itself), ``sandbox_error``
    (the sandbox failed; the program may not have run). ``reason`` says why in words.
    """

    status: str
    reason: str = ""
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    cpu_s: float | None = None
    network_isolated: bool = False
    filesystem_isolated: bool = False
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the program ran to the end and exited with code 0."""
        return self.status == "ok"


@dataclass
class _Identity:
    """Who the program runs as: a uid/gid of its own (root host) or the caller's (no drop)."""

    uid: int
    gid: int
    drop_privileges: bool


_uid_counter = itertools.count()
_lock_dir_checked: str | None = None
_lock_dir_mutex = threading.Lock()


def _lock_dir() -> str:
    """Root-only folder of the per-uid lock files (shared by every r1kit process on the machine)."""
    global _lock_dir_checked
    with _lock_dir_mutex:
        if _lock_dir_checked is None:
            base = "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
            path = os.path.join(base, "r1kit-sandbox")
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
                raise SandboxError(f"{path} must be a directory owned by root and writable by root only")
            _lock_dir_checked = path
        return _lock_dir_checked


@contextlib.contextmanager
def _identity():
    """Reserve a sandbox uid for one run (root), or use the caller's own ids (not root).

    Each run gets a uid that no other run uses at the same time (an flock on a lock file, held
    for the run, also guards against other processes), so that RLIMIT_NPROC counts this run's
    processes only and every process of that uid can be killed afterwards.
    """
    if os.geteuid() != 0:
        yield _Identity(os.getuid(), os.getgid(), False)
        return
    lock_dir = _lock_dir()
    start = next(_uid_counter)
    for i in range(UID_COUNT):
        uid = UID_BASE + (start + i) % UID_COUNT
        fd = os.open(os.path.join(lock_dir, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            kill_uid(uid)  # leftovers of a run whose host process died
            yield _Identity(uid, uid, True)
        finally:
            kill_uid(uid)
            os.close(fd)
        return
    raise SandboxError(f"all {UID_COUNT} sandbox uids from {UID_BASE} are in use")


def _other_can_execute(path: str) -> bool:
    """Whether a user other than the owner may run ``path`` (every folder on the way searchable)."""
    try:
        real = os.path.realpath(path)
        if os.stat(real).st_mode & 0o001 == 0:
            return False
        parent = os.path.dirname(real)
        while True:
            if os.stat(parent).st_mode & 0o001 == 0:
                return False
            if parent == "/":
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


_python_cache: dict[bool, str] = {}


def sandbox_python(drop_privileges: bool) -> str:
    """The interpreter that runs sandboxed programs.

    ``R1KIT_SANDBOX_PYTHON`` if set; else this interpreter if the sandbox user can run it (a
    pyenv Python under /root cannot be), else the first ``python3`` on the standard PATH.
    """
    if drop_privileges not in _python_cache:
        chosen = os.environ.get("R1KIT_SANDBOX_PYTHON")
        if not chosen:
            candidates = [sys.executable, shutil.which("python3", path=SAFE_PATH) or ""]
            usable = [c for c in candidates if c and (not drop_privileges or _other_can_execute(c))]
            if not usable:
                raise SandboxError("no Python interpreter that the sandbox user may run; set R1KIT_SANDBOX_PYTHON")
            chosen = usable[0]
        _python_cache[drop_privileges] = chosen
    return _python_cache[drop_privileges]


def _stage(workdir: str, code: str, files: dict[str, str | bytes] | None, ident: _Identity) -> None:
    """Write ``main.py`` and the extra files into the staging folder, readable by the sandbox user."""
    staged = {"main.py": code, **(files or {})}
    for name, content in staged.items():
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"file names must be plain names, got {name!r}")
        path = os.path.join(workdir, name)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        if ident.drop_privileges:
            os.chown(path, ident.uid, ident.gid)
    if ident.drop_privileges:
        os.chown(workdir, ident.uid, ident.gid)


def _environment(workdir: str) -> dict[str, str]:
    """The program's whole environment: nothing of the caller's is passed on."""
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}


class _Pump:
    """Feeds stdin and collects stdout, stderr and the launcher's status lines until they close,
    the deadline passes or an output exceeds its limit."""

    def __init__(self, proc: subprocess.Popen, status_fd: int, stdin: bytes, max_bytes: int):
        self.proc, self.max_bytes = proc, max_bytes
        self.stdin = memoryview(stdin)
        self.out = {"stdout": bytearray(), "stderr": bytearray(), "status": bytearray()}
        self.truncated = False
        self.sel = selectors.DefaultSelector()
        for name, fd in (("stdout", proc.stdout.fileno()), ("stderr", proc.stderr.fileno()), ("status", status_fd)):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)
        self.stdin_fd = proc.stdin.fileno()
        os.set_blocking(self.stdin_fd, False)
        if self.stdin:
            self.sel.register(self.stdin_fd, selectors.EVENT_WRITE, "stdin")
        else:
            self._close_stdin()

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def run(self, deadline: float, stop_at_limit: bool = True) -> str | None:
        """Pump until every output is closed (None), or ``"timeout"`` / ``"output_limit"``."""
        while any(key.data != "stdin" for key in self.sel.get_map().values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            for key, _ in self.sel.select(min(remaining, 0.5)):
                if key.data == "stdin":
                    self._write_stdin(key.fd)
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.sel.unregister(key.fd)
                    continue
                buf = self.out[key.data]
                room = self.max_bytes - len(buf) if key.data != "status" else len(chunk)
                buf += chunk[:max(room, 0)]
                if len(chunk) > room:
                    self.truncated = True
                    if stop_at_limit:
                        return "output_limit"
        return None

    def _write_stdin(self, fd: int) -> None:
        try:
            written = os.write(fd, self.stdin[:1 << 16])
            self.stdin = self.stdin[written:]
        except BlockingIOError:
            return
        except (BrokenPipeError, OSError):
            self.stdin = memoryview(b"")
        if not self.stdin:
            self.sel.unregister(fd)
            self._close_stdin()

    def close(self) -> None:
        self.sel.close()


def _status_messages(raw: bytes) -> dict:
    """The launcher's status lines merged into one dict (``setup``, ``pid``, ``error``, ``exit``)."""
    messages: dict = {}
    for line in raw.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict):
                if "error" in message and "error" in messages:
                    continue  # keep the first error
                messages.update(message)
    return messages


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _classify(stopped: str | None, messages: dict, stderr: str, limits: SandboxLimits,
              launcher_rc: int | None) -> tuple[str, str, int | None, float | None]:
    """(status, reason, returncode, cpu_s) of a run."""
    exit_info = messages.get("exit") or {}
    returncode, cpu_s = exit_info.get("returncode"), exit_info.get("cpu_s")
    if "error" in messages:
        return "sandbox_error", messages["error"], returncode, cpu_s
    if stopped == "timeout":
        return "timeout", f"wall-clock limit of {limits.wall_s:g} s exceeded", returncode, cpu_s
    if stopped == "output_limit":
        return "output_limit", f"output over the limit of {limits.max_output_bytes} bytes", returncode, cpu_s
    if returncode is None:
        detail = _last_line(stderr) or f"launcher exit code {launcher_rc}"
        return "sandbox_error", f"the sandbox launcher ended without a report ({detail})", None, cpu_s
    cpu_limit = max(1, -(-limits.cpu_s // 1))
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_s is not None and cpu_s >= cpu_limit):
        return "timeout", f"CPU time limit of {cpu_limit:g} s exceeded", returncode, cpu_s
    if returncode == 0:
        return "ok", "", returncode, cpu_s
    if _MEMORY_PATTERN.search(stderr[-4000:]):
        return "memory", f"memory limit of {limits.memory_mb} MiB exceeded ({_last_line(stderr)})", returncode, cpu_s
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return "killed", f"killed by signal {name}", returncode, cpu_s
    return "error", _last_line(stderr) or f"exit code {returncode}", returncode, cpu_s


def run_code(code: str, stdin: str | bytes = "", limits: SandboxLimits = SandboxLimits(),
             files: dict[str, str | bytes] | None = None) -> ExecResult:
    """Run the Python program ``code`` in a sandbox, feeding it ``stdin``; never raises because of
    the program (a failure of the sandbox itself gives ``status="sandbox_error"``).

    The program is ``main.py`` in a private, empty work directory (also its HOME and TMPDIR),
    next to ``files`` (plain name -> content), run as ``python -S -s -B main.py`` with a minimal
    environment. See :mod:`r1kit.sandbox` for the isolation and :class:`SandboxLimits` for the limits.
    """
    start = time.monotonic()
    stdin_bytes = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    try:
        with _identity() as ident:
            return _run(code, stdin_bytes, limits, files, ident, start)
    except (SandboxError, OSError, ValueError) as exc:
        return ExecResult("sandbox_error", f"{type(exc).__name__}: {exc}", wall_s=time.monotonic() - start)


def _run(code: str, stdin: bytes, limits: SandboxLimits, files: dict | None, ident: _Identity,
         start: float) -> ExecResult:
    workdir = tempfile.mkdtemp(prefix="r1kit-sbx-")
    proc = status_r = pump = None
    try:
        _stage(workdir, code, files, ident)
        python = sandbox_python(ident.drop_privileges)
        status_r, status_w = os.pipe()
        config = {"status_fd": status_w, "workdir": workdir, "python": python,
                  "argv": [python, "-S", "-s", "-B", "main.py"], "env": _environment(workdir),
                  "uid": ident.uid, "gid": ident.gid, "drop_privileges": ident.drop_privileges,
                  "namespaces": limits.namespaces, "require_isolation": limits.require_isolation,
                  "disk_mb": limits.disk_mb, "limits": dataclasses.asdict(limits)}
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", LAUNCHER, json.dumps(config)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(status_w,), start_new_session=True, cwd="/",
                                    env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"})
        finally:
            os.close(status_w)
        pump = _Pump(proc, status_r, stdin, limits.max_output_bytes)
        stopped = pump.run(start + limits.wall_s)
        if stopped:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)  # the launcher kills the program and cleans up
            pump.run(time.monotonic() + KILL_GRACE_S, stop_at_limit=False)
        try:
            launcher_rc = proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            launcher_rc = None
        messages = _status_messages(bytes(pump.out["status"]))
        if launcher_rc is None or "exit" not in messages:
            _force_kill(proc, messages.get("pid"), ident)
            launcher_rc = proc.wait()
        stderr = pump.out["stderr"].decode(errors="replace")
        status, reason, returncode, cpu_s = _classify(stopped, messages, stderr, limits, launcher_rc)
        setup = messages.get("setup") or {}
        return ExecResult(status=status, reason=reason, returncode=returncode,
                          stdout=pump.out["stdout"].decode(errors="replace"), stderr=stderr,
                          wall_s=time.monotonic() - start, cpu_s=cpu_s,
                          network_isolated=bool(setup.get("network")),
                          filesystem_isolated=bool(setup.get("filesystem")),
                          truncated=pump.truncated, warnings=list(setup.get("warnings", [])))
    finally:
        if proc is not None and proc.poll() is None:
            _force_kill(proc, None, ident)
            proc.wait()
        if pump is not None:
            pump.close()
        for stream in (proc.stdin, proc.stdout, proc.stderr) if proc is not None else ():
            with contextlib.suppress(OSError):
                stream.close()
        if status_r is not None:
            os.close(status_r)
        shutil.rmtree(workdir, ignore_errors=True)


def _force_kill(proc: subprocess.Popen, program_pid: int | None, ident: _Identity) -> None:
    """Kill the launcher's and the program's process groups, and every process of the sandbox uid."""
    for pgid in (proc.pid, program_pid):
        if pgid:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
    if ident.drop_privileges:
        kill_uid(ident.uid)
