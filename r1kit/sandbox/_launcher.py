"""Trusted first stage of a sandboxed run (see :mod:`r1kit.sandbox`).

The host starts this file as ``python -I -S _launcher.py CONFIG_JSON`` in a new session, with a
status pipe on the file descriptor named in the config. It uses the standard library only (it
never imports r1kit) and runs as the host's user, normally root. It

1. isolates itself: ``unshare`` of new mount, PID, network, IPC and UTS namespaces (plus a user
   namespace when not root), brings the new network namespace's loopback up, makes every mount
   read-only in its private mount namespace, and mounts a size-limited tmpfs on the work
   directory (with the staged files copied into it);
2. forks the program process, which becomes PID 1 of the new PID namespace, mounts a fresh
   ``/proc`` (only the sandbox's processes are visible), sets the resource limits, drops
   privileges (``setgroups([])``, ``setgid``, ``setuid`` to the sandbox uid), sets
   ``no_new_privs``, a seccomp filter that refuses AF_UNIX sockets (the network namespace and the
   read-only mounts do not keep a program from connecting to a host's Unix socket) and a
   parent-death SIGKILL, and execs the interpreter;
3. waits for it, kills whatever processes of the sandbox uid are left (only needed without a
   PID namespace: with one, the kernel kills the whole namespace when its PID 1 exits), reaps
   them, and reports the exit status and CPU time.

On ``SIGUSR1`` (the host's "time is up" or "too much output") or ``SIGALRM`` (its own backstop
wall-clock alarm) it SIGKILLs the program process. If the launcher itself dies, the kernel sends
SIGKILL to the program process (parent-death signal).

Status pipe protocol, one JSON object per line: ``{"setup": {...}}`` once set-up is done,
``{"error": "..."}`` if set-up or the exec failed, and finally
``{"exit": {"returncode": int, "cpu_s": float}}``.

When a namespace cannot be created (no privilege, seccomp, old kernel) the run goes on without
it and ``setup`` says so; the host decides whether that is acceptable.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import resource
import signal
import socket
import struct
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 14, 1 << 18, 1 << 21, 1 << 24
# Per-mount options that a read-only remount must keep (they may be locked in a user namespace).
MOUNT_FLAG_OPTIONS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                      "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}

PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 22, 36, 38
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(ret: int, what: str) -> None:
    """Raise OSError with errno for a failed libc call."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


def _status_fields(pid: int | str) -> dict[bytes, bytes] | None:
    """The fields of ``/proc/PID/status`` (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read(4096)
    except OSError:
        return None
    return dict(line.split(b":", 1) for line in text.splitlines() if b":" in line)


def _is_live_task_of(fields: dict[bytes, bytes] | None, uid: int) -> bool:
    """Whether status ``fields`` describe a live (non-zombie) process whose real uid is ``uid``."""
    if not fields:
        return False
    uids, state = fields.get(b"Uid", b"").split(), fields.get(b"State", b"").strip()
    return bool(uids) and int(uids[0]) == uid and not state.startswith((b"Z", b"X"))


def processes_of_uid(uid: int) -> list[int]:
    """PIDs (as seen in this PID namespace) of the live, non-zombie processes whose real uid is ``uid``."""
    return [int(name) for name in os.listdir("/proc")
            if name.isdigit() and _is_live_task_of(_status_fields(name), uid)]


def count_tasks_of_uid(uid: int) -> int:
    """Number of tasks (processes and threads, as RLIMIT_NPROC counts them) of real uid ``uid``."""
    total = 0
    for pid in processes_of_uid(uid):
        fields = _status_fields(pid)
        total += int(fields.get(b"Threads", b"1")) if fields else 0
    return total


def kill_uid(uid: int, rounds: int = 500) -> int:
    """SIGKILL every process of ``uid`` until none is left; returns how many were signalled.

    Only for a uid that belongs to the sandbox alone (never the caller's own uid). A pidfd pins
    each process between the uid check and the signal, so a recycled PID is never hit.
    """
    killed = 0
    for _ in range(rounds):
        pids = processes_of_uid(uid)
        if not pids:
            return killed
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if _is_live_task_of(_status_fields(pid), uid):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    killed += 1
            except OSError:
                pass
            finally:
                os.close(fd)
        time.sleep(0.002)
    return killed


def _unescape(path: str) -> str:
    """Undo the octal escapes (``\\040`` for a space...) of /proc/self/mountinfo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _make_mounts_readonly(keep_writable: str) -> list[str]:
    """Remount every mount of this (private) mount namespace read-only; returns the failures."""
    failures = []
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split(" ")
        mountpoint, options = _unescape(fields[4]), fields[5].split(",")
        if "ro" in options or mountpoint == keep_writable:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for option in options:
            flags |= MOUNT_FLAG_OPTIONS.get(option, 0)
        try:
            _mount(None, mountpoint, None, flags)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # a mount hidden below another one is already out of reach
                failures.append(f"{mountpoint}: {exc.strerror}")
    return failures


def _loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (so that local sockets work)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH22x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, ifreq)


def isolate(cfg: dict) -> dict:
    """Create the namespaces and the filesystem view; returns what was achieved."""
    setup = {"network": False, "filesystem": False, "pid": False, "warnings": []}
    if not cfg["namespaces"]:
        setup["warnings"].append("namespaces disabled by the caller")
        return setup
    root = os.geteuid() == 0
    user = 0 if root else CLONE_NEWUSER
    full = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | user
    flags = 0
    for attempt in (full, CLONE_NEWNET | user):
        if _libc.unshare(attempt) == 0:
            flags = attempt
            break
        setup["warnings"].append(f"unshare({attempt:#x}) refused: {os.strerror(ctypes.get_errno())}")
    if not flags:
        return setup
    if flags & CLONE_NEWUSER:  # map our own ids only: exec as a non-root uid drops the namespace's capabilities
        for name, content in (("setgroups", "deny"), ("uid_map", f"{cfg['uid']} {cfg['uid']} 1"),
                              ("gid_map", f"{cfg['gid']} {cfg['gid']} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(content)
    try:
        _loopback_up()
    except OSError as exc:
        setup["warnings"].append(f"loopback: {exc}")
    setup["network"] = True
    if flags & CLONE_NEWNS:
        workdir = cfg["workdir"]
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        staged = {}
        for name in os.listdir(workdir):
            with open(os.path.join(workdir, name), "rb") as f:
                staged[name] = f.read()
        failures = _make_mounts_readonly(keep_writable=workdir)
        setup["warnings"].extend(f"read-only remount failed: {f}" for f in failures)
        _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={cfg['disk_mb']}m,nr_inodes=10000,mode=0700,uid={cfg['uid']},gid={cfg['gid']}")
        for name, data in staged.items():
            path = os.path.join(workdir, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chown(path, cfg["uid"], cfg["gid"])
        setup["filesystem"] = not failures
    setup["pid"] = bool(flags & CLONE_NEWPID)
    return setup


def _set_limits(cfg: dict) -> None:
    """Resource limits of the program process (inherited by its children)."""
    lim = cfg["limits"]
    cpu = max(1, int(-(-lim["cpu_s"] // 1)))  # whole seconds, rounded up
    nproc = lim["max_processes"]
    if os.geteuid() != 0 or not cfg["drop_privileges"]:
        # The count is per real uid: without a uid of its own the sandbox shares it with the caller.
        nproc += count_tasks_of_uid(os.getuid())
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                       (resource.RLIMIT_AS, (lim["memory_mb"] << 20,) * 2),
                       (resource.RLIMIT_FSIZE, (lim["file_size_mb"] << 20,) * 2),
                       (resource.RLIMIT_NPROC, (nproc,) * 2),
                       (resource.RLIMIT_NOFILE, (lim["max_open_files"],) * 2),
                       (resource.RLIMIT_CORE, (0, 0)),
                       (resource.RLIMIT_MEMLOCK, (0, 0)),
                       (resource.RLIMIT_MSGQUEUE, (0, 0))):
        resource.setrlimit(res, value)


# seccomp: (audit arch, socket, io_uring_setup) per machine; x32 system calls (nr >= 2**30) refused too
SECCOMP_ARCH = {"x86_64": (0xC000003E, 41, 425), "aarch64": (0xC00000B7, 198, 425)}
LD_ABS, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
RET_ALLOW, RET_KILL, RET_EACCES = 0x7FFF0000, 0x80000000, 0x00050000 | errno.EACCES


def _refuse_unix_sockets() -> None:
    """A seccomp filter (inherited by every child and across exec): ``socket(AF_UNIX, ...)`` fails
    with EACCES, so the program cannot connect to the host's Unix sockets (path or abstract,
    whatever their mode: D-Bus, databases, X11); ``io_uring_setup``, which could open sockets past
    seccomp, fails the same way; system calls of another ABI (i386's ``socketcall``) kill the process.
    ``socketpair`` (a private pair, nothing of the host's) stays allowed."""
    arch, nr_socket, nr_io_uring = SECCOMP_ARCH[os.uname().machine]
    program = [(LD_ABS, 0, 0, 4),             # 0: A = arch
               (JEQ, 0, 8, arch),             # 1: another ABI -> 10 (kill)
               (LD_ABS, 0, 0, 0),             # 2: A = system call number
               (JGE, 5, 0, 0x40000000),       # 3: x32 -> 9 (refuse)
               (JEQ, 0, 2, nr_socket),        # 4: socket -> 5, else -> 7
               (LD_ABS, 0, 0, 16),            # 5: A = the address family (first argument, low half)
               (JEQ, 2, 1, socket.AF_UNIX),   # 6: AF_UNIX -> 9, else -> 8
               (JEQ, 1, 0, nr_io_uring),      # 7: io_uring_setup -> 9, else -> 8
               (RET, 0, 0, RET_ALLOW),        # 8
               (RET, 0, 0, RET_EACCES),       # 9
               (RET, 0, 0, RET_KILL)]         # 10
    filters = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(filters)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))  # struct sock_fprog
    fprog_buffer = ctypes.create_string_buffer(fprog)
    _check(_libc.prctl(PR_SET_SECCOMP, 2, ctypes.addressof(fprog_buffer), 0, 0), "seccomp filter")


def _exec_program(cfg: dict, setup: dict, status) -> None:
    """In the forked child: finish the isolation, drop privileges and exec the interpreter."""
    try:
        for sig in (signal.SIGUSR1, signal.SIGALRM, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        if setup["pid"]:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        os.setpgid(0, 0)
        os.chdir(cfg["workdir"])
        _set_limits(cfg)
        if cfg["drop_privileges"]:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _refuse_unix_sockets()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        os.umask(0o077)
        os.execve(cfg["python"], cfg["argv"], cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - report anything, then leave without cleanup handlers
        try:
            status.write(json.dumps({"error": f"cannot start the program: {type(exc).__name__}: {exc}"}) + "\n")
            status.flush()
        finally:
            os._exit(127)


def _clean_up(cfg: dict, setup: dict, child: int) -> None:
    """After the program process ended: kill what it left behind and reap the orphans (we are
    their subreaper). With a PID namespace the kernel has already killed everything in it."""
    if not setup["pid"]:
        if cfg["drop_privileges"]:
            kill_uid(cfg["uid"])  # descendants may have left the process group
        else:
            try:
                os.killpg(child, signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.005)


def main() -> int:
    cfg = json.loads(sys.argv[1])
    os.set_inheritable(cfg["status_fd"], False)
    status = os.fdopen(cfg["status_fd"], "w", buffering=1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the host died: stop, which stops the program too
    child = 0
    stop_requested = False

    def stop(signum, frame):  # noqa: ARG001
        nonlocal stop_requested
        stop_requested = True
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGUSR1, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        setup = isolate(cfg)
    except Exception as exc:  # noqa: BLE001
        status.write(json.dumps({"error": f"sandbox set-up failed: {type(exc).__name__}: {exc}"}) + "\n")
        return 1
    if cfg["require_isolation"] and not (setup["network"] and setup["filesystem"] and setup["pid"]):
        status.write(json.dumps({"setup": setup}) + "\n")
        status.write(json.dumps({"error": "isolation required but not available: "
                                 + "; ".join(setup["warnings"])}) + "\n")
        return 1
    status.write(json.dumps({"setup": setup}) + "\n")
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of the program come back to us to be reaped
    signal.setitimer(signal.ITIMER_REAL, cfg["limits"]["wall_s"] + 2.0)  # backstop if the host is gone
    child = os.fork()
    if child == 0:
        _exec_program(cfg, setup, status)
    status.write(json.dumps({"pid": child}) + "\n")
    if stop_requested:
        os.kill(child, signal.SIGKILL)
    _, wstatus, usage = os.wait4(child, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    _clean_up(cfg, setup, child)
    returncode = -os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else os.WEXITSTATUS(wstatus)
    status.write(json.dumps({"exit": {"returncode": returncode,
                                      "cpu_s": round(usage.ru_utime + usage.ru_stime, 4)}}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
