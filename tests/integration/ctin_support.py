"""Small helpers for the conntrack_info integration tests (namespace prefix ``ctin``).

* ``netns(name)``: a context manager that makes a network namespace with lo up and documentation
  addresses on lo, and always removes it.
* ``in_ns(ns, code, data)``: run Python code inside a namespace with the work tree importable as the
  collection; ``data`` is passed as JSON on stdin (``DATA``), and the code prints JSON (``emit(obj)``).
* ``run_module(name, args, namespace=None, check_mode=False)``: run a module file as Ansible runs it
  (args file with ANSIBLE_MODULE_ARGS) and return its JSON result.
* ``conntrack(ns, *args)``: conntrack-tools inside a namespace.
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(ROOT, 'build', 'src')
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.path.exists(PYTHON):
    PYTHON = sys.executable
sys.path.insert(0, os.path.join(ROOT, 'tests', 'unit', 'fixtures'))

PRELUDE = """
import json, sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
sys.path.insert(0, %r)
DATA = json.loads(sys.stdin.read() or 'null')
def emit(obj):
    sys.stdout.write(json.dumps(obj))
""" % (SRC, os.path.join(ROOT, 'tests', 'lab'), os.path.join(ROOT, 'tests', 'unit', 'fixtures'))


def sh(*argv, **kw):
    check = kw.pop('check', True)
    return subprocess.run(list(argv), check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=kw.pop('timeout', 60), **kw)


@contextlib.contextmanager
def netns(name, v4='192.0.2.1/24', v6='2001:db8::1/64'):
    assert name.startswith('ctin'), name
    sh('ip', 'netns', 'del', name, check=False)
    sh('ip', 'netns', 'add', name)
    try:
        sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
        if v4:
            sh('ip', '-n', name, 'addr', 'add', v4, 'dev', 'lo')
        if v6:
            sh('ip', '-n', name, 'addr', 'add', v6, 'dev', 'lo', 'nodad')
        yield name
    finally:
        sh('ip', 'netns', 'del', name, check=False)


def in_ns(ns, code, data=None, timeout=120):
    argv = ['ip', 'netns', 'exec', ns, PYTHON, '-c', PRELUDE + code] if ns else [PYTHON, '-c', PRELUDE + code]
    proc = subprocess.run(argv, input=json.dumps(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError('python in %s failed (%d): %s' % (ns, proc.returncode, proc.stderr[-4000:]))
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def fill(ns, count, seed):
    """tests/lab/tables.py's randomized table inside ``ns``; returns the number of refused entries."""
    return in_ns(ns, 'import tables\nemit(tables.fill(DATA[0], DATA[1]))', [count, seed])


def conntrack(ns, *args, **kw):
    return sh('ip', 'netns', 'exec', ns, 'conntrack', *args, **kw)


def nft(ns, ruleset):
    subprocess.run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], input=ruleset, universal_newlines=True,
                   check=True, timeout=30)


def run_module(name, args, namespace=None, check_mode=False, python=PYTHON, env=None):
    """Run plugins/modules/<name>.py like Ansible does; return (rc, result dict, stderr)."""
    module_args = dict(args)
    if namespace is not None:
        module_args['namespace'] = namespace
    module_args['_ansible_check_mode'] = check_mode
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': module_args}, handle)
        path = handle.name
    try:
        environ = dict(os.environ, PYTHONPATH=SRC)
        environ.update(env or {})
        proc = subprocess.run([python, os.path.join(ROOT, 'plugins', 'modules', name + '.py'), path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=180, env=environ, check=False)
    finally:
        os.unlink(path)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('module output is not JSON (rc %d): %s\nstderr: %s'
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.returncode, result, proc.stderr
