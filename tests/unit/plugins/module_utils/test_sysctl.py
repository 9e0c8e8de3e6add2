"""Unit tests of the conntrack knob catalogue, value parsing and persistence (no root, fake /proc)."""
import os
import stat

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _sysctl, _sysctlfiles, _sysctltask
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

KNOBS = {
    'nf_conntrack_max': ('262144', 0o644),
    'nf_conntrack_buckets': ('262144', 0o644),
    'nf_conntrack_count': ('10', 0o444),
    'nf_conntrack_expect_max': ('4096', 0o644),
    'nf_conntrack_acct': ('0', 0o644),
    'nf_conntrack_events': ('2', 0o644),
    'nf_conntrack_tcp_timeout_established': ('432000', 0o644),
    'nf_conntrack_udp_timeout': ('30', 0o644),
    'nf_conntrack_frag6_high_thresh': ('4194304', 0o644),
    'nf_conntrack_frag6_low_thresh': ('3145728', 0o644),
    'nf_conntrack_brand_new_knob': ('7', 0o644),
    'nf_hooks_lwtunnel': ('0', 0o644),
}


def make_proc(tmp_path, namespace=False):
    root = tmp_path / 'netfilter'
    root.mkdir()
    for name, (value, mode) in KNOBS.items():
        if namespace and name in ('nf_conntrack_max', 'nf_conntrack_buckets', 'nf_conntrack_expect_max'):
            mode = 0o444
        path = root / name
        path.write_text(value + '\n')
        os.chmod(str(path), mode)
    (root / 'nf_log').mkdir()
    return str(root)


def params(**kw):
    base = dict(name=None, value=None, settings=None, state='present', apply=True, persist=False, force=False,
                sysctl_file=None, modprobe_file=None, modules_load_file=None, conntrack_module='builtin')
    base.update(kw)
    return base


@pytest.fixture
def proc(tmp_path):
    return make_proc(tmp_path)


@pytest.fixture
def files(tmp_path):
    return dict(sysctl_file=str(tmp_path / 'sysctl.d' / '90-netfilter-conntrack.conf'),
                modprobe_file=str(tmp_path / 'modprobe.d' / 'netfilter-conntrack.conf'),
                modules_load_file=str(tmp_path / 'modules-load.d' / 'netfilter-conntrack.conf'))


# ---------------------------------------------------------------- catalogue and names

def test_catalogue_reads_only_conntrack_knobs(proc):
    cat = _sysctl.read_catalogue(proc)
    assert 'max' in cat and 'tcp_timeout_established' in cat and 'brand_new_knob' in cat
    assert 'nf_hooks_lwtunnel' not in cat and 'hooks_lwtunnel' not in cat and 'log' not in cat
    assert cat['max'].scope == 'global' and cat['buckets'].scope == 'global' and cat['expect_max'].scope == 'global'
    assert cat['udp_timeout'].scope == 'namespace'
    assert cat['count'].read_only and not cat['count'].writable
    assert cat['tcp_timeout_established'].kind == 'timeout'
    assert cat['acct'].kind == 'bool'
    assert cat['brand_new_knob'].kind == 'int'


def test_catalogue_in_a_namespace_marks_global_knobs_read_only(tmp_path):
    cat = _sysctl.read_catalogue(make_proc(tmp_path, namespace=True))
    assert not cat['max'].writable and not cat['buckets'].writable
    assert cat['udp_timeout'].writable


@pytest.mark.parametrize('given', ['max', 'nf_conntrack_max', 'net.netfilter.nf_conntrack_max', 'net.nf_conntrack_max',
                                   'net/netfilter/nf_conntrack_max', '/proc/sys/net/netfilter/nf_conntrack_max',
                                   ' max '])
def test_names_in_every_spelling(given):
    assert _sysctl.short_name(given) == 'max'


def test_hashsize_is_buckets():
    assert _sysctl.short_name('hashsize') == 'buckets'


def test_unknown_knob_lists_the_kernels_knobs(proc):
    with pytest.raises(ConntrackError) as exc:
        _sysctl.resolve('tcp_timeout_establishd', _sysctl.read_catalogue(proc))
    assert "unknown conntrack knob 'tcp_timeout_establishd'" in exc.value.msg
    assert 'tcp_timeout_established' in exc.value.msg and 'udp_timeout' in exc.value.msg


# ---------------------------------------------------------------- values

@pytest.mark.parametrize('given,seconds', [
    (300, 300), ('300', 300), ('30s', 30), ('5m', 300), ('12h', 43200), ('5d', 432000), ('1w', 604800),
    ('1h30m', 5400), ('1d 12h', 129600), ('2 days', 172800), ('10min', 600), (' 45S ', 45), (60.0, 60),
])
def test_durations(given, seconds):
    assert _sysctl.parse_duration(given) == seconds


@pytest.mark.parametrize('given,fragment', [
    ('5x', "unknown unit 'x'"), ('5 parsecs', "unknown unit 'parsecs'"), ('abc', 'is not a duration'),
    ('1.5h', 'is not a duration'), ('h', 'is not a duration'), (True, 'is not a duration'), ('--5', 'is not a duration'),
])
def test_bad_durations(given, fragment):
    with pytest.raises(ConntrackError) as exc:
        _sysctl.parse_duration(given)
    assert fragment in exc.value.msg


def knob(proc, short):
    return _sysctl.read_catalogue(proc)[short]


def test_timeout_range(proc):
    k = knob(proc, 'udp_timeout')
    assert _sysctl.parse_value(k, '2147483s') == 2147483
    for bad in (-1, '-1', 2147484, '25d'):
        with pytest.raises(ConntrackError) as exc:
            _sysctl.parse_value(k, bad)
        assert 'out of range: allowed 0-2147483 seconds' in exc.value.msg


def test_counts(proc):
    k = knob(proc, 'max')
    assert _sysctl.parse_value(k, '1048576') == 1048576
    assert _sysctl.parse_value(k, 0) == 0
    for bad, fragment in ((-5, 'out of range'), ('-5', 'out of range'), ('abc', 'is not a whole number'),
                          (2 ** 31, 'out of range'), ('1e6', 'is not a whole number'), (1.5, 'is not a whole number'),
                          (True, 'is not a number'), ('', 'a value is required'), (None, 'a value is required')):
        with pytest.raises(ConntrackError) as exc:
            _sysctl.parse_value(k, bad)
        assert fragment in exc.value.msg, (bad, exc.value.msg)
        assert 'net.netfilter.nf_conntrack_max' in exc.value.msg


def test_booleans(proc):
    k = knob(proc, 'acct')
    assert [_sysctl.parse_value(k, v) for v in (True, False, 'yes', 'off', 1, '0')] == [1, 0, 1, 0, 1, 0]
    with pytest.raises(ConntrackError) as exc:
        _sysctl.parse_value(k, 2)
    assert 'allowed 0 or 1' in exc.value.msg


def test_events_is_0_to_2(proc):
    k = knob(proc, 'events')
    assert _sysctl.parse_value(k, 2) == 2
    with pytest.raises(ConntrackError):
        _sysctl.parse_value(k, 3)


def test_buckets_are_rounded_like_the_kernel(proc):
    k = knob(proc, 'buckets')
    step = _sysctl.bucket_multiple()
    assert _sysctl.parse_value(k, 100000) % step == 0
    assert _sysctl.parse_value(k, 100000) >= 100000
    assert _sysctl.parse_value(k, step * 7) == step * 7
    with pytest.raises(ConntrackError):
        _sysctl.parse_value(k, 0)
    with pytest.raises(ConntrackError):
        _sysctl.parse_value(k, _sysctl.buckets_max() + 1)


def test_unknown_kernel_knob_takes_any_integer(proc):
    assert _sysctl.parse_value(knob(proc, 'brand_new_knob'), '-3') == -3


# ---------------------------------------------------------------- the engine

def run(proc, check_mode=False, initial=True, **kw):
    manager = _sysctltask.SysctlManager(params(**kw), initial_namespace=initial, netfilter_dir=proc,
                                        module_kind=kw.get('conntrack_module', 'builtin'))
    return manager.run(check_mode=check_mode)


def value(proc, name):
    with open(os.path.join(proc, name)) as handle:
        return handle.read().strip()


def test_apply_then_idempotent(proc):
    result = run(proc, settings={'udp_timeout': '1m', 'tcp_timeout_established': '1d'})
    assert result['changed']
    assert result['settings']['net.netfilter.nf_conntrack_udp_timeout'] == dict(old=30, new=60, changed=True)
    assert value(proc, 'nf_conntrack_udp_timeout') == '60'
    assert value(proc, 'nf_conntrack_tcp_timeout_established') == '86400'
    assert 'nf_conntrack_udp_timeout = 30' in result['diff'][0]['before']
    again = run(proc, settings={'udp_timeout': 60, 'tcp_timeout_established': 86400})
    assert not again['changed'] and again['diff'] == []


def test_check_mode_writes_nothing(proc, files):
    result = run(proc, check_mode=True, name='max', value=300000, persist=True, **files)
    assert result['changed']
    assert result['settings']['net.netfilter.nf_conntrack_max']['new'] == 300000
    assert value(proc, 'nf_conntrack_max') == '262144'
    assert result['files']['written'] == [files['sysctl_file']]
    assert not os.path.exists(files['sysctl_file'])


def test_global_knob_in_a_namespace_is_refused(tmp_path):
    proc = make_proc(tmp_path, namespace=True)
    with pytest.raises(ConntrackError) as exc:
        run(proc, initial=False, settings={'udp_timeout': 60, 'max': 300000})
    assert 'nf_conntrack_max is global' in exc.value.msg and 'initial network namespace' in exc.value.msg
    assert value(proc, 'nf_conntrack_udp_timeout') == '30'  # validation before any change


def test_read_only_knob(proc):
    with pytest.raises(ConntrackError) as exc:
        run(proc, name='nf_conntrack_count', value=5)
    assert 'read-only' in exc.value.msg


def test_same_knob_twice(proc):
    with pytest.raises(ConntrackError) as exc:
        run(proc, settings={'max': 300000, 'net.nf_conntrack_max': 300001})
    assert 'given twice' in exc.value.msg


def test_name_without_value(proc):
    with pytest.raises(ConntrackError) as exc:
        run(proc, name='max')
    assert 'needs a value' in exc.value.msg


def test_max_below_count_is_refused_unless_forced(proc):
    with pytest.raises(ConntrackError) as exc:
        run(proc, name='max', value=5)
    assert 'holds 10 entries' in exc.value.msg and 'force: true' in exc.value.msg
    assert value(proc, 'nf_conntrack_max') == '262144'
    assert run(proc, name='max', value=5, force=True)['changed']
    assert value(proc, 'nf_conntrack_max') == '5'


def test_frag6_pair(proc):
    with pytest.raises(ConntrackError) as exc:
        run(proc, name='frag6_low_thresh', value=5000000)
    assert 'must not exceed' in exc.value.msg
    order = _sysctltask.SysctlManager._write_order(
        [(knob(proc, 'frag6_low_thresh'), 3145728, 6000000), (knob(proc, 'frag6_high_thresh'), 4194304, 8000000)])
    assert [k.short for k, o, n in order] == ['frag6_high_thresh', 'frag6_low_thresh']
    order = _sysctltask.SysctlManager._write_order(
        [(knob(proc, 'frag6_high_thresh'), 4194304, 2000000), (knob(proc, 'frag6_low_thresh'), 3145728, 1000000)])
    assert [k.short for k, o, n in order] == ['frag6_low_thresh', 'frag6_high_thresh']


def test_write_failure_rolls_back(proc, monkeypatch):
    real = _sysctl.write_value

    def failing(k, v):
        if k.short == 'udp_timeout':
            raise ConntrackError('the kernel refused it')
        real(k, v)
    monkeypatch.setattr(_sysctl, 'write_value', failing)  # _sysctltask calls it through the module
    with pytest.raises(ConntrackError):
        run(proc, settings={'acct': 1, 'udp_timeout': 60})
    assert value(proc, 'nf_conntrack_acct') == '0'


def test_catalogue_when_nothing_is_asked(proc):
    result = run(proc)
    assert not result['changed']
    assert result['catalogue']['max']['value'] == 262144
    assert result['catalogue']['max']['sysctl'] == 'net.netfilter.nf_conntrack_max'


# ---------------------------------------------------------------- persistence

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_persist_builtin_writes_sysctl_file_only(proc, files):
    result = run(proc, settings={'max': 300000, 'hashsize': 100000, 'udp_timeout': '1m'}, persist=True, **files)
    text = open(files['sysctl_file']).read()
    assert text.startswith('# Managed by Ansible')
    assert 'net.netfilter.nf_conntrack_max = 300000\n' in text
    assert 'net.netfilter.nf_conntrack_buckets = %d\n' % _sysctl.round_buckets(100000) in text
    assert 'net.netfilter.nf_conntrack_udp_timeout = 60\n' in text
    assert mode(files['sysctl_file']) == 0o644
    assert not os.path.exists(files['modprobe_file']) and not os.path.exists(files['modules_load_file'])
    assert any('built into this kernel' in w for w in result['warnings'])
    again = run(proc, settings={'max': 300000, 'hashsize': 100000, 'udp_timeout': 60}, persist=True, **files)
    assert not again['changed']


def test_persist_loadable_writes_modprobe_and_modules_load(proc, files):
    run(proc, settings={'max': 300000, 'buckets': 65536}, persist=True, conntrack_module='loadable', **files)
    assert 'options nf_conntrack hashsize=65536\n' in open(files['modprobe_file']).read()
    assert _sysctlfiles.parse_modprobe_hashsize(open(files['modprobe_file']).read()) == 65536
    assert open(files['modules_load_file']).read().splitlines()[-1] == 'nf_conntrack'
    assert mode(files['modprobe_file']) == 0o644 and mode(files['modules_load_file']) == 0o644


def test_persist_merges_with_earlier_tasks_and_apply_false(proc, files):
    run(proc, name='udp_timeout', value=60, persist=True, **files)
    result = run(proc, name='max', value=300000, persist=True, apply=False, **files)
    values = _sysctlfiles.parse_sysctl_text(open(files['sysctl_file']).read())
    assert values == {'net.netfilter.nf_conntrack_udp_timeout': '60', 'net.netfilter.nf_conntrack_max': '300000'}
    assert value(proc, 'nf_conntrack_max') == '262144'
    assert result['settings'] == {}


def test_persist_fixes_the_mode(proc, files):
    run(proc, name='udp_timeout', value=60, persist=True, **files)
    os.chmod(files['sysctl_file'], 0o600)
    assert run(proc, name='udp_timeout', value=60, persist=True, **files)['changed']
    assert mode(files['sysctl_file']) == 0o644


def test_absent_one_knob_then_all(proc, files):
    run(proc, settings={'max': 300000, 'buckets': 65536, 'udp_timeout': 60}, persist=True,
        conntrack_module='loadable', **files)
    result = run(proc, name='buckets', state='absent', conntrack_module='loadable', **files)
    assert result['files']['removed'] == [files['modprobe_file']]
    assert 'nf_conntrack_buckets' not in open(files['sysctl_file']).read()
    assert value(proc, 'nf_conntrack_buckets') == '65536'  # values in force stay
    result = run(proc, state='absent', **files)
    assert sorted(result['files']['removed']) == sorted([files['sysctl_file'], files['modules_load_file']])
    assert not any(os.path.exists(p) for p in files.values())
    assert not run(proc, state='absent', **files)['changed']


def test_absent_check_mode(proc, files):
    run(proc, name='udp_timeout', value=60, persist=True, **files)
    result = run(proc, state='absent', check_mode=True, **files)
    assert result['changed'] and result['files']['removed'] == [files['sysctl_file']]
    assert os.path.exists(files['sysctl_file'])


def test_persist_refused_in_a_namespace(tmp_path, files):
    proc = make_proc(tmp_path, namespace=True)
    for kw in (dict(name='udp_timeout', value=60, persist=True), dict(state='absent')):
        with pytest.raises(ConntrackError) as exc:
            run(proc, initial=False, **dict(kw, **files))
        assert 'initial network namespace only' in exc.value.msg
    assert not os.path.exists(files['sysctl_file'])


def test_not_loaded(tmp_path, files):
    empty = str(tmp_path / 'empty')
    os.mkdir(empty)
    with pytest.raises(ConntrackError) as exc:
        run(empty, name='max', value=300000)
    assert 'not loaded' in exc.value.msg
    run(empty, name='max', value=300000, apply=False, persist=True, **files)
    assert 'nf_conntrack_max = 300000' in open(files['sysctl_file']).read()


def test_file_round_trip():
    text = _sysctlfiles.render_sysctl_text({'net.netfilter.nf_conntrack_max': 5, 'net.netfilter.nf_conntrack_acct': 1})
    assert _sysctlfiles.parse_sysctl_text(text) == {'net.netfilter.nf_conntrack_max': '5', 'net.netfilter.nf_conntrack_acct': '1'}
    assert _sysctlfiles.parse_sysctl_text('; c\n-net.netfilter.nf_conntrack_max=7\nbad line\n') == {
        'net.netfilter.nf_conntrack_max': '7'}
    assert _sysctlfiles.render_sysctl_text({}) is None
    assert _sysctlfiles.parse_modprobe_hashsize('options nf_conntrack expect_hashsize=5 hashsize=8192 # x') == 8192
    assert _sysctlfiles.parse_modprobe_hashsize('options other hashsize=8192') is None


def test_overriding_files(tmp_path):
    d1, d2 = tmp_path / 'etc', tmp_path / 'usr'
    d1.mkdir()
    d2.mkdir()
    (d1 / '10-early.conf').write_text('net.netfilter.nf_conntrack_max = 1\n')
    (d2 / '99-late.conf').write_text('net.nf_conntrack_max = 2\n')
    ours = str(d1 / '90-netfilter-conntrack.conf')
    found = _sysctlfiles.overriding_files(ours, ['net.netfilter.nf_conntrack_max'], dirs=(str(d1), str(d2)))
    assert found == ['%s (net.netfilter.nf_conntrack_max)' % (d2 / '99-late.conf')]


def test_module_kind(tmp_path):
    mods = tmp_path / 'modules'
    sysmod = tmp_path / 'sys_nf_conntrack'
    mods.write_text('nf_nat 1 0 - Live 0x0\nnf_conntrack 2 1 nf_nat, Live 0x0\n')
    assert _sysctl.conntrack_module_kind(str(mods), str(sysmod)) == 'loadable'
    sysmod.mkdir()
    (sysmod / 'parameters').mkdir()
    assert _sysctl.conntrack_module_kind(str(tmp_path / 'no-proc-modules'), str(sysmod)) == 'builtin'
    mods.write_text('nf_nat 1 0 - Live 0x0\n')
    assert _sysctl.conntrack_module_kind(str(mods), str(sysmod)) == 'builtin'
    (sysmod / 'initstate').write_text('live\n')
    assert _sysctl.conntrack_module_kind(str(mods), str(sysmod), release='no-such-release') == 'unknown'


def test_companion_tcp_knobs_are_in_the_catalogue(tmp_path):
    netfilter = tmp_path / 'net' / 'netfilter'
    ipv4 = tmp_path / 'net' / 'ipv4'
    netfilter.mkdir(parents=True)
    ipv4.mkdir(parents=True)
    (netfilter / 'nf_conntrack_max').write_text('262144\n')
    (ipv4 / 'tcp_syncookies').write_text('1\n')
    (ipv4 / 'tcp_max_syn_backlog').write_text('2048\n')
    catalogue = _sysctl.read_catalogue(str(netfilter))
    assert catalogue['tcp_syncookies'].sysctl == 'net.ipv4.tcp_syncookies'
    assert catalogue['tcp_syncookies'].scope == 'namespace' and catalogue['tcp_syncookies'].maximum == 2
    assert catalogue['max'].sysctl == 'net.netfilter.nf_conntrack_max'
    assert 'tcp_timestamps' not in catalogue  # only what this kernel has
    assert _sysctl.short_name('net.ipv4.tcp_syncookies') == 'tcp_syncookies'
    assert _sysctl.resolve('net.ipv4.tcp_max_syn_backlog', catalogue).short == 'tcp_max_syn_backlog'


def test_companions_alone_do_not_count_as_conntrack_loaded(tmp_path):
    netfilter = tmp_path / 'net' / 'netfilter'
    ipv4 = tmp_path / 'net' / 'ipv4'
    netfilter.mkdir(parents=True)
    ipv4.mkdir(parents=True)
    (ipv4 / 'tcp_syncookies').write_text('1\n')
    manager = _sysctltask.SysctlManager({'name': 'max', 'value': 1}, netfilter_dir=str(netfilter), module_kind='builtin')
    assert not manager.loaded


# ---------------------------------------------------------------- a failed task changes nothing

def test_a_persist_failure_puts_the_runtime_values_and_files_back(proc, files, monkeypatch):
    """Values applied, the first file written, the second refused: all of it is undone."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _files
    real = _files.atomic_write

    def failing(path, text, mode=0o644, option=None):
        if path == files['modules_load_file']:
            raise ConntrackError('cannot write %r (%s): disk full' % (path, option), option=option)
        real(path, text, mode, option)
    monkeypatch.setattr(_files, 'atomic_write', failing)
    before = (value(proc, 'nf_conntrack_max'), value(proc, 'nf_conntrack_udp_timeout'))
    with pytest.raises(ConntrackError) as info:
        run(proc, settings={'max': 300000, 'udp_timeout': 90}, persist=True, conntrack_module='loadable', **files)
    assert info.value.option == 'modules_load_file'
    assert (value(proc, 'nf_conntrack_max'), value(proc, 'nf_conntrack_udp_timeout')) == before
    assert not os.path.exists(files['sysctl_file']) and not os.path.exists(files['modules_load_file'])


def test_a_failed_write_restores_an_existing_file(proc, files, monkeypatch):
    run(proc, settings={'udp_timeout': 60}, persist=True, **files)
    original = open(files['sysctl_file']).read()
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _files
    real = _files.atomic_write
    calls = []

    def second_fails(path, text, mode=0o644, option=None):
        calls.append(path)
        if len(calls) == 2:
            raise ConntrackError('refused', option=option)
        real(path, text, mode, option)
    monkeypatch.setattr(_files, 'atomic_write', second_fails)
    with pytest.raises(ConntrackError):
        run(proc, settings={'udp_timeout': 120, 'max': 300000}, persist=True, conntrack_module='loadable', **files)
    monkeypatch.setattr(_files, 'atomic_write', real)
    assert open(files['sysctl_file']).read() == original
    assert value(proc, 'nf_conntrack_udp_timeout') == '60'


@pytest.mark.parametrize('path', ['/tmp/x\x00y', ''])
def test_unusable_paths_name_the_option(proc, path):
    with pytest.raises(ConntrackError) as info:
        run(proc, settings={'udp_timeout': 60}, persist=True, sysctl_file=path)
    assert info.value.option == 'sysctl_file' or 'sysctl_file' in info.value.msg


@pytest.mark.parametrize('given', ['\u0663', '\u0663\u0660s', '\u00b2', '1e3', 'inf', float('inf'), float('nan'), 1.5])
def test_values_are_ascii_whole_numbers(proc, given):
    with pytest.raises(ConntrackError) as info:
        _sysctl.parse_value(knob(proc, 'udp_timeout'), given)
    assert info.value.option == 'value'


def test_a_value_that_cannot_be_set_back_is_named(proc, monkeypatch):
    real = _sysctl.write_value
    calls = []

    def flaky(k, v):
        calls.append(k.short)
        if k.short == 'udp_timeout' or (k.short == 'acct' and len(calls) > 2):
            raise ConntrackError('the kernel refused it')
        real(k, v)
    monkeypatch.setattr(_sysctl, 'write_value', flaky)
    with pytest.raises(ConntrackError) as info:
        run(proc, settings={'acct': 1, 'udp_timeout': 60})
    assert 'could not be set back' in info.value.msg and 'nf_conntrack_acct (was 0)' in info.value.msg


# ---------------------------------------------------------------- what the result proves (the roles verify from it)

def test_result_proves_values_read_back_and_file_persisted(proc, files):
    result = run(proc, settings={'max': 300000, 'udp_timeout': '1m'}, persist=True, **files)
    assert result['in_force'] is True and result['mismatch'] == []
    assert result['persisted'] == files['sysctl_file']
    again = run(proc, settings={'max': 300000, 'udp_timeout': 60}, persist=True, **files)
    assert not again['changed'] and again['in_force'] is True and again['persisted'] == files['sysctl_file']


def test_check_mode_proves_nothing(proc, files):
    result = run(proc, check_mode=True, settings={'udp_timeout': 45}, persist=True, **files)
    assert result['in_force'] is None and result['persisted'] is None


def test_a_value_the_kernel_does_not_keep_is_a_mismatch(proc, monkeypatch):
    real = _sysctl.read_value

    def stubborn(knob):
        return 30 if knob.short == 'udp_timeout' else real(knob)

    monkeypatch.setattr(_sysctl, 'read_value', stubborn)
    result = run(proc, settings={'udp_timeout': 45})
    assert result['in_force'] is False
    assert result['mismatch'] == ['net.netfilter.nf_conntrack_udp_timeout is 30 in the kernel, 45 was asked for']


def test_a_file_that_does_not_hold_the_values_fails_and_is_put_back(proc, files, monkeypatch):
    real = _sysctltask.read_file
    calls = []

    def lossy(path, option=None):
        calls.append(path)
        text = real(path, option)
        # the read-back after the write: another writer dropped the line
        return text.replace('net.netfilter.nf_conntrack_udp_timeout = 45\n', '') if len(calls) > 2 and text else text

    monkeypatch.setattr(_sysctltask, 'read_file', lossy)
    with pytest.raises(ConntrackError, match='does not hold net.netfilter.nf_conntrack_udp_timeout'):
        run(proc, settings={'udp_timeout': 45}, persist=True, **files)
    assert value(proc, 'nf_conntrack_udp_timeout') == '30'  # the runtime value was set back
    assert not os.path.exists(files['sysctl_file'])  # and the file removed again
