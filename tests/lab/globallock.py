"""One lock for everything that touches the kernel's global conntrack knobs.

``nf_conntrack_max`` and the hash size are global: a test that lowers them, and a
benchmark that fills a table of 250,000 entries, must not run at the same time.
Both take this lock (an flock, released when the process ends, even on a crash).
"""
import contextlib
import fcntl
import os

LOCK_PATH = '/run/lock/netfilter-conntrack-tests.lock'


@contextlib.contextmanager
def global_lock(path=LOCK_PATH):
    """Hold the project's lock on global kernel knobs for the duration of the block."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'a') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def restored_sysctl(path, value=None):
    """Under the global lock, optionally write ``value`` to ``path``; restore the original on exit."""
    with global_lock():
        with open(path) as handle:
            original = handle.read().strip()
        try:
            if value is not None:
                with open(path, 'w') as handle:
                    handle.write(str(value))
            yield original
        finally:
            with open(path, 'w') as handle:
                handle.write(original)
