"""The harness of assert-style code tests. It is not imported: its source is the program the sandbox
runs (``r1kit.rewards.code.HARNESS``). It reads the run's nonce on stdin, executes ``solution.py``,
then each test of ``tests.json`` (calling ``check(candidate)`` when the tests define it), and
prints ``NONCE PASSED TOTAL`` on the last line, which a solution cannot forge without the nonce.
Return values must be built-in types, so an object with a custom ``__eq__`` cannot pass an assert.
"""
import builtins, json, os, sys, traceback

PLAIN = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set, frozenset)


def plain(value, depth=0):
    """Whether value is made of built-in types only (no objects with custom __eq__)."""
    if type(value) not in PLAIN or depth > 50:
        return False
    if type(value) in (list, tuple, set, frozenset):
        return all(plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(plain(k, depth + 1) and plain(v, depth + 1) for k, v in value.items())
    return True


def guarded(fn):
    def candidate(*args, **kwargs):
        result = fn(*args, **kwargs)
        if not plain(result):
            raise TypeError("the solution returned a " + type(result).__name__ + ", not a built-in value")
        return result
    return candidate


def run(nonce):
    original_builtins = dict(vars(builtins))
    with open("tests.json") as f:
        spec = json.load(f)
    tests, entry_point = spec["tests"], spec["entry_point"]
    with open("solution.py") as f:
        source = f.read()
    solution = {"__name__": "solution", "__file__": "solution.py", "__builtins__": builtins}
    passed = 0
    try:
        exec(compile(source, "solution.py", "exec"), solution)
    except MemoryError:
        raise  # over the memory limit: the whole run fails (status "memory")
    except BaseException:
        traceback.print_exc(limit=5)
        tests = []
    for i, test in enumerate(tests):
        namespace = dict(solution)
        namespace.update(__name__="__test__", __builtins__=dict(original_builtins))
        if entry_point is not None and entry_point in solution:
            namespace[entry_point] = guarded(solution[entry_point])
        try:
            exec(compile(test, "test_%d.py" % i, "exec"), namespace)
            if entry_point is not None and callable(namespace.get("check")):
                namespace["check"](guarded(solution[entry_point]))
            passed += 1
        except MemoryError:
            raise
        except BaseException:
            sys.stderr.write("test %d failed:\n" % i)
            traceback.print_exc(limit=5)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, ("\n%s %d %d\n" % (nonce, passed, len(spec["tests"]))).encode())
    os._exit(0)


if __name__ == "__main__":  # the sandbox runs it as main.py
    run(sys.stdin.readline().strip())
