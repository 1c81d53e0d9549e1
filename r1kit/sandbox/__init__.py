"""A local sandbox for untrusted (model-generated) Python code.

Nothing model-generated ever runs in the calling process: :func:`run_code` starts a separate
process and returns an :class:`ExecResult`; :class:`SandboxPool` runs many in parallel.

How a run is isolated (where the kernel allows it; the launcher is :mod:`r1kit.sandbox._launcher`):

* **processes**: a new PID namespace (the program is its PID 1, with a fresh ``/proc`` showing
  only its own processes); when the program exits or is killed, the kernel kills everything it
  started. ``RLIMIT_NPROC`` caps processes and threads (no fork bombs).
* **user**: when the host runs as root the program runs as a uid/gid of its own (from
  ``UID_BASE``, 65000 by default, one per concurrent run, no supplementary groups,
  ``no_new_privs``), so it cannot signal the host's processes, the process limit counts its own
  processes only, and every process of that uid can be killed afterwards.
* **network**: a new network namespace with only a loopback interface: no outside connection.
* **filesystem**: a private mount namespace in which every mount is read-only, except the work
  directory, a fresh tmpfs of ``disk_mb`` MiB (also HOME and TMPDIR) that vanishes with the run.
* **resources**: wall-clock limit (the host stops the run), CPU time, address space, file size,
  open files; stdout and stderr are captured up to ``max_output_bytes`` each (more stops the run).
* **environment**: only PATH, LANG/LC_ALL, HOME, TMPDIR and fixed PYTHON* variables; stdin is
  what the caller passes; the interpreter runs with ``-S -s -B`` (no site-packages).

Fallback: if namespaces cannot be created (no CAP_SYS_ADMIN, seccomp, unprivileged user
namespaces disabled), the run still happens with the resource limits and (as root) its own uid,
but ``network_isolated`` and ``filesystem_isolated`` are False: the program can open network
connections and write wherever its uid may (e.g. world-writable ``/tmp``), and the work directory
is a plain folder on disk (removed afterwards). Set ``SandboxLimits(require_isolation=True)`` to
refuse such runs instead. As a non-root user the launcher uses an unprivileged user namespace for
the same isolation; the program then keeps the caller's uid, so the process limit is counted on
top of the caller's own processes.

Not a virtual machine: the program shares the host kernel (no seccomp filter); treat the sandbox
as containment of buggy or reward-hacking code, not of a determined kernel exploit.
"""
from r1kit.sandbox.pool import Job, SandboxPool
from r1kit.sandbox.runner import STATUSES, ExecResult, SandboxError, SandboxLimits, run_code, sandbox_python

__all__ = ["ExecResult", "Job", "STATUSES", "SandboxError", "SandboxLimits", "SandboxPool", "run_code",
           "sandbox_python"]
