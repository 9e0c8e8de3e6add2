"""conntrack_sysctl on the real kernel (root): namespaces named ctsy-*, global knobs raised and restored.

The module runs as Ansible runs it (a separate Python process given its arguments as JSON), from the
work tree (build/src, see tests/conftest.py). Every assertion is on the kernel's or the filesystem's
state read back afterwards. Global knobs (nf_conntrack_max, buckets) are only ever RAISED, under the
project's global lock (tests/lab/globallock.py), and restored in every exit path.
"""
import contextlib
import json
import os
import stat
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from globallock import global_lock  # noqa: E402

PY = os.path.join(ROOT, '.venv', 'bin', 'python')
SRC = os.path.join(ROOT, 'build', 'src')
NF = '/proc/sys/net/netfilter/'
MAX = NF + 'nf_conntrack_max'
BUCKETS = NF + 'nf_conntrack_buckets'
HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize'
MODULE = 'ansible_collections.netfilter.conntrack.plugins.modules.conntrack_sysctl'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces, /proc/sys writes)')


# ---------------------------------------------------------------- helpers

def run_module(args, check_mode=False, diff=True, tmp=None):
    """Run conntrack_sysctl like Ansible does; return its JSON result (failed results included)."""
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    path = '/tmp/ctsy-args-%s.json' % uuid.uuid4().hex[:8]
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, handle)
    try:
        proc = subprocess.run([PY, '-m', MODULE, path], capture_output=True, text=True, timeout=60, check=False,
                              env=dict(os.environ, PYTHONPATH=SRC), cwd='/')
    finally:
        os.unlink(path)
    assert proc.stdout.strip(), proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 'Traceback' not in proc.stderr and 'exception' not in result, proc.stderr + str(result)
    return result


def ns_read(namespace, name):
    out = subprocess.run(['ip', 'netns', 'exec', namespace, 'cat', NF + name], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip())


def ns_snapshot(namespace):
    script = 'import os;d="%s";print({n: open(d+n).read().strip() for n in sorted(os.listdir(d)) ' \
             'if n.startswith("nf_conntrack_") and n != "nf_conntrack_count"})' % NF
    return subprocess.run(['ip', 'netns', 'exec', namespace, PY, '-c', script], capture_output=True, text=True,
                          check=True).stdout


def read(path):
    with open(path) as handle:
        return int(handle.read().split()[0])


def write(path, value):
    with open(path, 'w') as handle:
        handle.write(str(value))


@contextlib.contextmanager
def restored(*paths):
    """Hold the global lock; on exit write back the values the paths had on entry (every exit path)."""
    with global_lock():
        originals = [(path, read(path)) for path in paths]
        try:
            yield dict(originals)
        finally:
            for path, value in reversed(originals):
                if read(path) != value:
                    write(path, value)


@pytest.fixture
def netns():
    """A fresh network namespace ctsy-<random>, always removed."""
    name = 'ctsy-%s' % uuid.uuid4().hex[:8]
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    try:
        yield name
    finally:
        subprocess.run(['ip', 'netns', 'del', name], check=False)


@pytest.fixture
def files(tmp_path):
    return dict(sysctl_file=str(tmp_path / 'sysctl.d' / '90-netfilter-conntrack.conf'),
                modprobe_file=str(tmp_path / 'modprobe.d' / 'netfilter-conntrack.conf'),
                modules_load_file=str(tmp_path / 'modules-load.d' / 'netfilter-conntrack.conf'))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- per-namespace knobs

def test_namespace_timeouts_set_read_back_idempotent(netns):
    args = dict(namespace=netns, settings={'tcp_timeout_established': '1d', 'udp_timeout': '45s',
                                           'net.netfilter.nf_conntrack_udp_timeout_stream': 180})
    check = run_module(args, check_mode=True)
    assert check['changed'] and ns_read(netns, 'nf_conntrack_tcp_timeout_established') == 432000
    result = run_module(args)
    assert result['changed'] and not result['initial_namespace']
    assert ns_read(netns, 'nf_conntrack_tcp_timeout_established') == 86400
    assert ns_read(netns, 'nf_conntrack_udp_timeout') == 45
    assert ns_read(netns, 'nf_conntrack_udp_timeout_stream') == 180
    assert result['settings']['net.netfilter.nf_conntrack_tcp_timeout_established'] == dict(
        old=432000, new=86400, changed=True)
    assert 'nf_conntrack_udp_timeout = 30' in result['diff'][0]['before']
    assert 'nf_conntrack_udp_timeout = 45' in result['diff'][0]['after']
    again = run_module(args)
    assert not again['changed'] and 'diff' not in again


def test_catalogue_in_a_namespace(netns):
    result = run_module(dict(namespace=netns))
    assert not result['changed']
    cat = result['catalogue']
    assert cat['max']['scope'] == 'global' and not cat['max']['writable']
    assert cat['expect_max']['scope'] == 'global' and not cat['expect_max']['writable']
    assert cat['udp_timeout']['writable'] and cat['udp_timeout']['value'] == 30
    assert not cat['count']['writable']


@pytest.mark.parametrize('args,fragment', [
    (dict(name='udp_timeout', value=-1), 'out of range: allowed 0-2147483 seconds'),
    (dict(name='udp_timeout', value='abc'), 'is not a duration'),
    (dict(name='udp_timeout', value='5x'), "unknown unit 'x'"),
    (dict(name='udp_timeout', value='30 parsecs'), "unknown unit 'parsecs'"),
    (dict(name='udp_timeout', value=3000000), 'out of range'),
    (dict(name='acct', value=2), 'allowed 0 or 1'),
    (dict(name='events', value='many'), 'is not a whole number'),
    (dict(name='tcp_max_retrans', value=256), 'out of range'),
    (dict(name='nf_conntrack_count', value=1), 'read-only'),
    (dict(name='tcp_timeout_establshed', value=60), "unknown conntrack knob 'tcp_timeout_establshed'"),
    (dict(name='max', value=300000), 'is global: it can only be changed from the initial network namespace'),
    (dict(name='hashsize', value=300000), 'nf_conntrack_buckets is global'),
    (dict(name='expect_max', value=8192), 'nf_conntrack_expect_max is global'),
    (dict(settings={'udp_timeout': 60, 'max': 300000}), 'is global'),
    (dict(name='udp_timeout', value=60, persist=True), 'initial network namespace only'),
    (dict(state='absent'), 'initial network namespace only'),
    (dict(name='udp_timeout'), 'needs a value'),
])
def test_bad_input_in_a_namespace_changes_nothing(netns, args, fragment):
    before = ns_snapshot(netns)
    result = run_module(dict(args, namespace=netns))
    assert result.get('failed'), result
    assert fragment in result['msg'], result['msg']
    assert ns_snapshot(netns) == before


def test_unknown_namespace():
    result = run_module(dict(namespace='ctsy-does-not-exist', name='udp_timeout', value=30))
    assert result['failed'] and 'does not exist' in result['msg']


def test_name_and_settings_are_exclusive():
    result = run_module(dict(name='udp_timeout', value=30, settings={'udp_timeout': 30}))
    assert result['failed'] and 'mutually exclusive' in result['msg']


# ---------------------------------------------------------------- global knobs, initial namespace

def test_bad_input_on_the_host_changes_nothing():
    with restored(MAX) as orig:
        for value, fragment in ((-5, 'out of range'), ('lots', 'is not a whole number'), (2 ** 31, 'out of range'),
                                (True, 'is not a number')):
            result = run_module(dict(name='net.netfilter.nf_conntrack_max', value=value))
            assert result['failed'] and fragment in result['msg'], result
            assert read(MAX) == orig[MAX]


def test_raise_max_in_the_initial_namespace_and_restore():
    with restored(MAX) as orig:
        wanted = orig[MAX] + 4096
        check = run_module(dict(name='nf_conntrack_max', value=wanted), check_mode=True)
        assert check['changed'] and read(MAX) == orig[MAX]
        result = run_module(dict(name='net.nf_conntrack_max', value=wanted))
        assert result['changed'] and result['initial_namespace']
        assert result['settings'] == {'net.netfilter.nf_conntrack_max': dict(old=orig[MAX], new=wanted, changed=True)}
        assert read(MAX) == wanted and read('/proc/sys/net/nf_conntrack_max') == wanted
        assert not run_module(dict(name='max', value=wanted))['changed']
    assert read(MAX) == orig[MAX]


def test_raise_buckets_rounded_like_the_kernel_and_restore():
    with restored(BUCKETS) as orig:
        asked = orig[BUCKETS] + 4000  # not a multiple of 512: the kernel rounds it up
        result = run_module(dict(name='hashsize', value=asked))
        assert result['changed']
        got = read(BUCKETS)
        assert got % 512 == 0 and asked <= got < asked + 512
        assert read(HASHSIZE) == got
        assert result['settings']['net.netfilter.nf_conntrack_buckets']['new'] == got
        assert not run_module(dict(name='buckets', value=asked))['changed']  # idempotent despite rounding
    assert read(BUCKETS) == orig[BUCKETS]


# ---------------------------------------------------------------- persistence

def test_persist_files_content_mode_check_mode_and_absent(files):
    with restored(MAX) as orig:
        wanted = orig[MAX] + 4096
        args = dict(settings={'max': wanted, 'tcp_timeout_established': '5d'}, persist=True, **files)
        check = run_module(args, check_mode=True)
        assert check['changed'] and check['files']['written'] == [files['sysctl_file']]
        assert not os.path.exists(files['sysctl_file']) and read(MAX) == orig[MAX]
        result = run_module(args)
        assert result['files']['written'] == [files['sysctl_file']]
        text = open(files['sysctl_file']).read()
        assert text.splitlines()[1:] == ['net.netfilter.nf_conntrack_max = %d' % wanted,
                                         'net.netfilter.nf_conntrack_tcp_timeout_established = 432000']
        assert text.startswith('# Managed by Ansible')
        assert mode(files['sysctl_file']) == 0o644
        assert not os.path.exists(files['modprobe_file'])  # built in here: no modprobe.d, no modules-load.d
        assert not os.path.exists(files['modules_load_file'])
        assert not [n for n in os.listdir(os.path.dirname(files['sysctl_file'])) if n.startswith('.')]  # no temp left
        assert not run_module(args)['changed']
        gone = run_module(dict(state='absent', **files))
        assert gone['changed'] and gone['files']['removed'] == [files['sysctl_file']]
        assert not os.path.exists(files['sysctl_file'])
        assert read(MAX) == wanted  # absent does not touch the values in force
    assert read(MAX) == orig[MAX]


def test_builtin_warns_that_modprobe_does_nothing(files):
    with restored(BUCKETS) as orig:
        result = run_module(dict(name='buckets', value=orig[BUCKETS], persist=True, **files))
        assert result['conntrack_module'] == 'builtin'
        assert 'built into this kernel' in json.dumps(result.get('warnings', []))  # 2.19: structured warnings
        assert 'net.netfilter.nf_conntrack_buckets = %d' % orig[BUCKETS] in open(files['sysctl_file']).read()


def test_persist_to_the_real_default_paths_and_remove():
    """apply: false, so the running kernel is untouched; the real files are removed (or restored) afterwards."""
    paths = ['/etc/sysctl.d/90-netfilter-conntrack.conf', '/etc/modprobe.d/netfilter-conntrack.conf',
             '/etc/modules-load.d/netfilter-conntrack.conf']
    saved = dict((p, open(p).read() if os.path.exists(p) else None) for p in paths)
    try:
        result = run_module(dict(settings={'udp_timeout_stream': '3m'}, persist=True, apply=False))
        assert paths[0] in result['files']['written'] and result['settings'] == {}
        assert 'net.netfilter.nf_conntrack_udp_timeout_stream = 180\n' in open(paths[0]).read()
        assert mode(paths[0]) == 0o644
        if saved[paths[0]] is None:
            gone = run_module(dict(state='absent'))
            assert paths[0] in gone['files']['removed'] and not os.path.exists(paths[0])
        else:
            gone = run_module(dict(name='udp_timeout_stream', state='absent'))
            assert 'udp_timeout_stream' not in open(paths[0]).read()
    finally:
        for path, text in saved.items():
            if text is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                with open(path, 'w') as handle:
                    handle.write(text)


def test_simulated_reboot_of_namespace_knobs(files):
    """Persist per-namespace knobs, then 'boot' a fresh namespace (kernel defaults) and apply the file as boot does."""
    result = run_module(dict(settings={'tcp_timeout_established': '2h4m', 'udp_timeout_stream': '2m',
                                       'tcp_timeout_close_wait': '1h'}, persist=True, apply=False, **files))
    assert result['changed']
    name = 'ctsy-boot-%s' % uuid.uuid4().hex[:6]
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    try:
        assert ns_read(name, 'nf_conntrack_tcp_timeout_established') == 432000  # reset: kernel defaults
        subprocess.run(['ip', 'netns', 'exec', name, 'sysctl', '-q', '-p', files['sysctl_file']], check=True)
        assert ns_read(name, 'nf_conntrack_tcp_timeout_established') == 7440
        assert ns_read(name, 'nf_conntrack_udp_timeout_stream') == 120
        assert ns_read(name, 'nf_conntrack_tcp_timeout_close_wait') == 3600
    finally:
        subprocess.run(['ip', 'netns', 'del', name], check=False)


def test_simulated_reboot_of_global_knobs(files):
    """Persist raised max and buckets (as for a loadable module too), reset, re-apply as boot does, restore."""
    with restored(MAX, BUCKETS) as orig:
        want_max, want_buckets = orig[MAX] + 4096, orig[BUCKETS] + 512
        result = run_module(dict(settings={'max': want_max, 'buckets': want_buckets}, persist=True,
                                 conntrack_module='loadable', **files))
        assert result['changed'] and read(MAX) == want_max and read(BUCKETS) == want_buckets
        assert open(files['modprobe_file']).read().splitlines()[-1] == 'options nf_conntrack hashsize=%d' % want_buckets
        assert open(files['modules_load_file']).read().splitlines()[-1] == 'nf_conntrack'
        assert all(mode(p) == 0o644 for p in files.values())
        # "reboot": back to the values before the task
        write(BUCKETS, orig[BUCKETS])
        write(MAX, orig[MAX])
        assert read(MAX) == orig[MAX] and read(BUCKETS) == orig[BUCKETS]
        # module load with the modprobe.d options, then systemd-sysctl with our file
        hashsize = int(open(files['modprobe_file']).read().split('hashsize=')[1].split()[0])
        write(HASHSIZE, hashsize)
        assert read(BUCKETS) == want_buckets
        write(BUCKETS, orig[BUCKETS])
        subprocess.run(['sysctl', '-q', '-p', files['sysctl_file']], check=True)
        assert read(MAX) == want_max and read(BUCKETS) == want_buckets
    assert read(MAX) == orig[MAX] and read(BUCKETS) == orig[BUCKETS]


def test_count_is_read_from_the_namespace_table(netns):
    """The refusal to go below the count (role and module) relies on the count of the right table."""
    for i in range(3):
        subprocess.run(['ip', 'netns', 'exec', netns, 'conntrack', '-I', '-p', 'udp', '-s', '192.0.2.1',
                        '-d', '192.0.2.%d' % (i + 2), '--sport', '1000', '--dport', '53', '-t', '60', '-u',
                        'SEEN_REPLY'], check=True, capture_output=True)
    result = run_module(dict(namespace=netns))
    assert result['catalogue']['count']['value'] == 3
