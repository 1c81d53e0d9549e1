"""The sandbox: normal runs, limits, an adversarial suite (each attack contained and the host
unharmed), the fallback without namespaces, and the pool's concurrency limit and throughput."""
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from r1kit.sandbox import ExecResult, Job, SandboxLimits, SandboxPool, run_code
from r1kit.sandbox.runner import UID_BASE, UID_COUNT

FAST = SandboxLimits(wall_s=3, cpu_s=3)


def sandbox_processes() -> list[tuple[int, int]]:
    """(pid, uid) of live processes running as a sandbox uid or as nobody (65534)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uid = int(fields["Uid"].split()[0])
        if (UID_BASE <= uid < UID_BASE + UID_COUNT or uid == 65534) and not fields["State"].strip().startswith("Z"):
            found.append((int(name), uid))
    return found


def run(code: str, **kwargs) -> ExecResult:
    return run_code(textwrap.dedent(code), **kwargs)


@pytest.fixture(autouse=True)
def no_leftovers():
    """Every test leaves no sandbox process behind."""
    yield
    assert sandbox_processes() == []


# ---------------------------------------------------------------------------------------------
# normal runs


def test_runs_code_with_stdin_and_captures_output():
    result = run("""
        import sys
        name = input()
        print("hello", name)
        print("warning", file=sys.stderr)
    """, stdin="world\n")
    assert result.status == "ok" and result.ok and result.returncode == 0
    assert result.stdout == "hello world\n" and result.stderr == "warning\n"
    assert result.network_isolated and result.filesystem_isolated
    assert 0 < result.wall_s < FAST.wall_s and result.cpu_s is not None


def test_runs_as_unprivileged_user_in_private_workdir_that_is_removed():
    result = run("""
        import json, os
        os.makedirs("sub")
        with open("sub/data.txt", "w") as f:
            f.write("x")
        print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd(),
                          "home": os.environ["HOME"], "files": sorted(os.listdir(".")),
                          "pids": [p for p in os.listdir("/proc") if p.isdigit()]}))
    """)
    assert result.status == "ok", result
    info = json.loads(result.stdout)
    assert UID_BASE <= info["uid"] < UID_BASE + UID_COUNT and info["gid"] == info["uid"] and info["groups"] == []
    assert info["home"] == info["cwd"] and info["files"] == ["main.py", "sub"]
    assert info["pids"] == ["1"]  # a PID namespace of its own: the host's processes are invisible
    assert not os.path.exists(info["cwd"])


def test_error_status_and_reason():
    result = run("def f():\n    return 1 / 0\nf()\n")
    assert result.status == "error" and result.returncode == 1
    assert result.reason == "ZeroDivisionError: division by zero"
    exited = run("import sys; print('partial'); sys.exit(3)")
    assert exited.status == "error" and exited.returncode == 3 and exited.stdout == "partial\n"


def test_extra_files_and_hash_seed_are_fixed():
    result = run_code("import helper; print(helper.VALUE, hash('abc'))", files={"helper.py": "VALUE = 42\n"})
    again = run_code("import helper; print(helper.VALUE, hash('abc'))", files={"helper.py": "VALUE = 42\n"})
    assert result.stdout.split()[0] == "42" and result.stdout == again.stdout


def test_cpu_time_limit():
    result = run("while True: pass", limits=SandboxLimits(wall_s=10, cpu_s=1))
    assert result.status == "timeout" and "CPU" in result.reason
    assert result.wall_s < 6


def test_file_size_and_disk_limits():
    big = run("open('big', 'wb').write(b'x' * (20 << 20))", limits=SandboxLimits(file_size_mb=10))
    assert big.status == "error" and "File too large" in big.reason
    full = run("""
        for i in range(100):
            with open(f"f{i}", "wb") as f:
                f.write(b"x" * (1 << 20))
    """, limits=SandboxLimits(disk_mb=8))
    assert full.status == "error" and "No space left" in full.reason


# ---------------------------------------------------------------------------------------------
# adversarial suite: every case is contained with the right status and the host is unharmed


def test_infinite_loop_times_out():
    result = run("while True:\n    pass\n", limits=SandboxLimits(wall_s=1.5, cpu_s=10))
    assert result.status == "timeout" and "wall-clock" in result.reason
    assert result.wall_s < 1.5 + 1.5


def test_sleeping_forever_times_out():
    result = run("import time\ntime.sleep(3600)\n", limits=SandboxLimits(wall_s=1, cpu_s=10))
    assert result.status == "timeout" and result.wall_s < 2.5


def test_fork_bomb_is_contained():
    result = run("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """, limits=SandboxLimits(wall_s=2, cpu_s=2, max_processes=16))
    assert result.status == "timeout"
    assert subprocess.run(["true"], timeout=10).returncode == 0  # the host can still start processes
    assert sandbox_processes() == []


def test_escaping_children_are_killed():
    # Children that leave the process group and outlive the program (daemons) die with it.
    result = run("""
        import os, time
        for _ in range(4):
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(3600)
                os._exit(0)
        print("parent exits")
    """)
    assert result.status == "ok" and result.stdout == "parent exits\n"
    assert sandbox_processes() == []


def test_huge_allocation_hits_memory_limit():
    result = run("data = bytearray(10 * 2**30)\n")
    assert result.status == "memory" and "MemoryError" in result.reason
    growing = run("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 20))\n", limits=FAST)
    assert growing.status == "memory"


def test_cannot_write_outside_the_workdir():
    escape = f"/tmp/r1kit_escape_{secrets.token_hex(8)}"
    etc = f"/etc/r1kit_escape_{secrets.token_hex(8)}"
    result = run(f"""
        import os
        outcomes = {{}}
        for path in ({escape!r}, {etc!r}, "/var/tmp/r1kit_escape", "/dev/shm/r1kit_escape"):
            try:
                with open(path, "w") as f:
                    f.write("escaped")
                outcomes[path] = "written"
            except OSError as exc:
                outcomes[path] = exc.strerror
        print(outcomes)
    """)
    assert result.status == "ok"
    assert "written" not in result.stdout and "Read-only file system" in result.stdout
    assert not os.path.exists(escape) and not os.path.exists(etc)
    assert not os.path.exists("/var/tmp/r1kit_escape") and not os.path.exists("/dev/shm/r1kit_escape")


def test_cannot_delete_files_of_the_parent():
    folder = tempfile.mkdtemp(prefix="r1kit-canary-")
    try:
        os.chmod(folder, 0o777)  # world-writable: only the sandbox's read-only view protects it
        canary = os.path.join(folder, "canary.txt")
        with open(canary, "w") as f:
            f.write("alive")
        os.chmod(canary, 0o666)
        result = run(f"""
            import os, shutil
            for attempt in (lambda: os.remove({canary!r}), lambda: shutil.rmtree({folder!r}),
                            lambda: open({canary!r}, "w").write("overwritten")):
                try:
                    attempt()
                except OSError as exc:
                    print(exc.strerror)
        """)
        assert result.status == "ok" and result.stdout.count("Read-only file system") == 3
        with open(canary) as f:
            assert f.read() == "alive"
    finally:
        subprocess.run(["rm", "-rf", folder], check=True)


def test_no_network_access():
    probe = run_code("pass", limits=SandboxLimits(require_isolation=True))
    assert probe.status == "ok" and probe.network_isolated  # this machine supports network namespaces
    # require_isolation: the connect below is only attempted inside a network namespace.
    result = run("""
        import socket, time
        start = time.time()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect(("1.1.1.1", 80))
            print("connected")
        except OSError as exc:
            print("refused", exc.errno, round(time.time() - start, 2))
    """, limits=SandboxLimits(require_isolation=True))
    assert result.status == "ok" and result.network_isolated
    assert result.stdout.startswith("refused") and float(result.stdout.split()[-1]) < 1.0
    local = run("""
        import socket
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname())
        print("loopback works")
    """, limits=SandboxLimits(require_isolation=True))
    assert local.stdout == "loopback works\n"


@pytest.mark.parametrize("namespaces", [True, False])
def test_cannot_connect_to_host_unix_sockets(tmp_path, namespaces):
    """Real listeners on the host: a world-writable path socket and an abstract one. The program
    can neither connect nor even create an AF_UNIX socket; a private socketpair still works."""
    import socket

    folder = tempfile.mkdtemp()
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "host.sock")
    abstract = "\0r1kit-test-" + secrets.token_hex(4)
    listeners = []
    for address in (path, abstract):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen()
        listener.setblocking(False)
        listeners.append(listener)
    os.chmod(path, 0o777)
    try:
        result = run(f"""
            import socket
            for address in ({path!r}, {abstract!r}):
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(address)
                    s.sendall(b"hello host")
                    print("connected")
                except OSError as exc:
                    print("refused", exc.errno)
            a, b = socket.socketpair()
            a.sendall(b"x")
            print("pair", b.recv(1))
        """, limits=SandboxLimits(namespaces=namespaces))
        assert result.status == "ok", result
        assert result.stdout == "refused 13\nrefused 13\npair b'x'\n"
        for listener in listeners:
            with pytest.raises(BlockingIOError):
                listener.accept()
        # the listeners do work: a host client gets through
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            listeners[0].accept()[0].close()
    finally:
        for listener in listeners:
            listener.close()
        subprocess.run(["rm", "-rf", folder], check=True)


def test_cannot_kill_the_parent_or_host_processes():
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        result = run(f"""
            import os, signal
            for pid in (os.getppid(), {os.getpid()}, {bystander.pid}, -1):
                try:
                    os.kill(pid, signal.SIGKILL)
                    print(pid, "sent")
                except OSError as exc:
                    print(pid, type(exc).__name__)
            print("still here")
        """)
        assert result.status in ("ok", "killed")
        assert bystander.poll() is None  # a root process of the host survived
        assert f"{bystander.pid} sent" not in result.stdout and f"{os.getpid()} sent" not in result.stdout
        os.kill(os.getpid(), 0)  # and so did this test process
    finally:
        bystander.kill()
        bystander.wait()


def test_printing_a_gigabyte_is_cut_short():
    start = time.monotonic()
    result = run("""
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(chunk)
    """, limits=SandboxLimits(max_output_bytes=1 << 20))
    assert result.status == "output_limit" and result.truncated
    assert len(result.stdout) == 1 << 20
    assert time.monotonic() - start < 3


def test_environment_secrets_are_not_visible(monkeypatch):
    secret = secrets.token_hex(16)
    monkeypatch.setenv("R1KIT_TEST_SECRET", secret)
    result = run(f"""
        import os
        print(sorted(os.environ))
        print(os.environ.get("R1KIT_TEST_SECRET"))
        try:
            print(open("/proc/{os.getpid()}/environ", "rb").read())
        except OSError as exc:
            print("environ unreadable:", type(exc).__name__)
    """)
    assert result.status == "ok"
    assert secret not in result.stdout and "R1KIT_TEST_SECRET" not in result.stdout
    assert "environ unreadable" in result.stdout


# ---------------------------------------------------------------------------------------------
# fallback without namespaces


def test_fallback_without_namespaces_reports_no_isolation():
    result = run("import os; print(os.getuid())", limits=SandboxLimits(namespaces=False))
    assert result.status == "ok" and not result.network_isolated and not result.filesystem_isolated
    assert UID_BASE <= int(result.stdout) < UID_BASE + UID_COUNT  # still not root
    assert any("namespaces" in w for w in result.warnings)
    refused = run_code("print('never runs')", limits=SandboxLimits(namespaces=False, require_isolation=True))
    assert refused.status == "sandbox_error" and "isolation required" in refused.reason
    assert refused.stdout == ""
    bomb = run("""
        import os, time
        for _ in range(100):
            try:
                if os.fork() == 0:
                    os.setsid()
                    time.sleep(3600)
            except OSError:
                pass
        print("done")
    """, limits=SandboxLimits(namespaces=False, wall_s=3))
    assert bomb.status == "ok" and sandbox_processes() == []  # the uid sweep killed the escapees


# ---------------------------------------------------------------------------------------------
# pool


def test_pool_respects_concurrency_and_reports_throughput():
    limit, n = 4, 200
    code = "import time\nstart = time.time()\ntime.sleep(0.03)\nprint(start, time.time())\n"
    start = time.monotonic()
    with SandboxPool(max_workers=limit) as pool:
        results = pool.map([(code, "")] * (n - 1) + [Job(code)])
    elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["ok"] * n
    events = sorted([(float(a), 1) for a, _ in (r.stdout.split() for r in results)]
                    + [(float(b), -1) for _, b in (r.stdout.split() for r in results)], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert 2 <= peak <= limit
    print(f"\n{n} executions, {limit} workers: {elapsed:.1f} s, {n / elapsed:.1f} executions/s, "
          f"peak concurrency {peak}", file=sys.stderr)


def test_pool_results_keep_order():
    with SandboxPool(max_workers=2) as pool:
        results = pool.map([f"print({i})" for i in range(6)] + [("print(input())", "echo")])
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)] + ["echo\n"]
