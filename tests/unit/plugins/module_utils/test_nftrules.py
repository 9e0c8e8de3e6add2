"""_nftrules: rule validation, rendering and the plans of the owned table (pure text, nft faked)."""
import os

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _nft
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nftrules as rules
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

SYNPROXY_TABLE = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                   'fixtures', 'nft_tables.txt')).read()  # a table as ``nft list`` prints it


def rule(**given):
    base = dict((key, None) for key in rules.NOTRACK_RULE_SPEC)
    base.update(direction='inbound', state='present', synproxy=False, all=False)
    base.update(given)
    return base


def refused(**given):
    with pytest.raises(ConntrackError) as info:
        rules.normalize_notrack(rule(**given), 0)
    assert info.value.msg.startswith('rules[0]'), info.value.msg
    return info.value.msg


# --- validation -------------------------------------------------------------------------------------

def test_a_rule_without_match_needs_all():
    assert 'all: true' in refused()
    assert 'all: true' in refused(family='ipv4')
    assert rules.normalize_notrack(rule(all=True), 0) == {'family': 'both', 'direction': 'inbound', 'all': True}


def test_all_with_matches_is_refused():
    assert 'cannot be combined with proto, dport' in refused(all=True, proto='udp', dport=53)


def test_rule_ids_of_existing_rules_do_not_change():
    """Rules written before the ``all`` option keep their id (a second run stays a no-op)."""
    canon = rules.normalize_notrack(rule(proto='udp', dport=53), 0)
    assert 'all' not in canon
    assert rules.rule_id(canon) == rules.rule_id({'proto': 'udp', 'dport': ['53'], 'family': 'both',
                                                 'direction': 'inbound'})


@pytest.mark.parametrize('value', ['\u0663', '\u00b2', '53.5', 53.5, float('inf'), True, '0x35', [], '1-2-3'])
def test_ports_are_ascii_numbers(value):
    msg = refused(proto='udp', dport=value)
    assert 'rules[0].dport' in msg


@pytest.mark.parametrize('name', ['eth0\n', 'eth0"', 'a b', 'x/y', 'x:1', '.', '..', '', 'e*th', '\u00e9' * 8,
                                  'a' * 16, 'eth0\x00'])
def test_interface_names(name):
    msg = refused(proto='udp', dport=53, iif=name)
    assert 'rules[0].iif' in msg and 'bytes' in msg


@pytest.mark.parametrize('name', ['eth0', 'veth-ct_1.2', 'eth*', 'a' * 15, '\u00e9' * 7])
def test_good_interface_names(name):
    assert rules.normalize_notrack(rule(proto='udp', dport=53, iif=name), 0)['iif'] == name


@pytest.mark.parametrize('address', ['fe80::1%x', 'fe80::1%x;flush ruleset', '192.0.2.1;', '192.0.2.1 ', '\u0663.0.0.1'])
def test_addresses_have_no_scope_or_junk(address):
    if address == '192.0.2.1 ':
        assert rules.normalize_notrack(rule(proto='udp', src=address), 0)['src'] == '192.0.2.1/32'
        return
    assert 'rules[0].src' in refused(proto='udp', src=address)


@pytest.mark.parametrize('opts,words', [
    ({'mss': 1460.7}, 'rules[0].synproxy_options.mss'),
    ({'mss': float('inf')}, 'rules[0].synproxy_options.mss'),
    ({'wscale': 15}, 'out of range'),
    ({'mss': 100}, 'out of range'),
    ({'timestamp': 'false'}, 'is not a boolean'),
    ({'bogus': 1}, 'synproxy_options.bogus is unknown'),
])
def test_synproxy_options(opts, words):
    assert words in refused(proto='tcp', dport=443, synproxy=True, synproxy_options=opts)


def test_synproxy_options_defaults_and_none():
    canon = rules.normalize_notrack(rule(proto='tcp', dport=443, synproxy=True,
                                         synproxy_options={'mss': 1400, 'wscale': None, 'timestamp': False}), 0)
    assert canon['synproxy'] == {'mss': 1400, 'wscale': 7, 'timestamp': False, 'sack_perm': True}


@pytest.mark.parametrize('value', [0, -1, 2 ** 32, 2 ** 64])
def test_connlimit_range(value):
    assert 'rules[0].connlimit' in refused(proto='tcp', dport=443, connlimit=value)


def test_connlimit_top_of_range():
    assert rules.normalize_notrack(rule(proto='tcp', dport=443, connlimit=2 ** 32 - 1), 0)['connlimit'] == 2 ** 32 - 1


# --- rendering: the invalid drop is scoped to SYNPROXY traffic ------------------------------------

def test_drop_invalid_line_has_the_rules_matches():
    canon = rules.normalize_notrack(rule(proto='tcp', dport=[443, 8443], synproxy=True, family='ipv4'), 0)
    line = rules.drop_invalid_line(canon, 'abc123')
    assert line == 'meta nfproto ipv4 tcp dport { 443, 8443 } ct state invalid drop comment "nc:drop_invalid:abc123"'


class FakeNft(object):
    """Stands in for ``run_nft``: serves a listed table and records the transactions."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, args, stdin=None):
        self.calls.append((list(args), stdin))
        if args[:1] == ['list']:
            return (0, self.table, '') if self.table else (1, '', 'Error: No such file or directory')
        return 0, '', ''


def plan(monkeypatch, table, **params):
    fake = FakeNft(table)
    monkeypatch.setattr(_nft, 'run_nft', fake)
    base = dict(rules=[], exclusive=False, drop_invalid=None, persist=False)
    base.update(params)
    base['rules'] = [rule(**r) for r in base['rules']]
    result, warnings = rules.NotrackPlan(base).run(check_mode=True)
    return result, warnings, fake


def test_the_unscoped_drop_of_older_releases_is_replaced(monkeypatch):
    result, _w, fake = plan(monkeypatch, SYNPROXY_TABLE)
    assert result['changed'] is True and result['drop_invalid'] is True
    after = result['diff']['after']
    assert 'ct state invalid drop comment "nc:drop_invalid"\n' not in after
    assert after.count('ct state invalid drop') == 3
    assert 'tcp dport 1000-2000 ct state invalid drop comment "nc:drop_invalid:bbb"' in after
    assert fake.calls[-1][0] == ['-c', '-f', '-']


def test_scoped_drops_are_a_no_op_the_second_time(monkeypatch):
    first, _w, _f = plan(monkeypatch, SYNPROXY_TABLE)
    second, _w, fake = plan(monkeypatch, first['diff']['after'])
    assert second['changed'] is False
    assert [call for call in fake.calls if call[0][:1] != ['list']] == []


def test_drop_invalid_without_synproxy_rules_warns_and_drops_nothing(monkeypatch):
    result, warnings, _f = plan(monkeypatch, None, rules=[{'proto': 'udp', 'dport': 53}], drop_invalid=True)
    assert result['drop_invalid'] is False
    assert 'ct state invalid drop' not in result['diff']['after']
    assert any('SYNPROXY rules only' in w for w in warnings)


def test_new_synproxy_rule_gets_its_scoped_drop(monkeypatch):
    result, _w, _f = plan(monkeypatch, None, rules=[{'proto': 'tcp', 'dport': 8443, 'synproxy': True}],
                          drop_invalid=True)
    after = result['diff']['after']
    rid = result['rules'][0]['id']
    assert 'tcp dport 8443 ct state invalid drop comment "nc:drop_invalid:%s"' % rid in after
    # order in the input chain: SYNPROXY first, then its drop
    assert after.index('synproxy mss') < after.index('ct state invalid drop')


def test_persist_failing_halfway_leaves_no_file_and_no_table(monkeypatch, tmp_path):
    """The table file is written, the unit file is refused: the table file goes again and nft -f never runs."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _files
    fake = FakeNft(None)
    monkeypatch.setattr(_nft, 'run_nft', fake)
    real = _files.atomic_write

    def refuse_unit(path, text, mode=0o644, option=None):
        if option == 'unit_file':
            raise ConntrackError('cannot write %r (unit_file): read-only file system' % path, option='unit_file')
        real(path, text, mode, option)
    monkeypatch.setattr(_files, 'atomic_write', refuse_unit)
    table_file = str(tmp_path / 'nc.nft')
    params = dict(rules=[rule(proto='udp', dport=53)], exclusive=False, drop_invalid=None, persist=True,
                  persist_file=table_file, unit_file=str(tmp_path / 'systemd' / 'nc.service'))
    with pytest.raises(ConntrackError) as info:
        rules.NotrackPlan(params).run(check_mode=False)
    assert info.value.option == 'unit_file'
    assert not os.path.exists(table_file)
    assert [args for args, _stdin in fake.calls if args[:1] != ['list']] == [['-c', '-f', '-']]


def test_in_force_reads_the_table_back_after_a_change(monkeypatch):
    fake = FakeNft(None)
    monkeypatch.setattr(_nft, 'run_nft', fake)
    params = dict(rules=[rule(proto='tcp', dport=8443, synproxy=True)], exclusive=True, drop_invalid=True, persist=False)
    preview, _w = rules.NotrackPlan(params).run(check_mode=True)
    assert preview['in_force'] is None  # check mode proves nothing
    fake.table = None  # the apply "fails silently": the table read back is still empty
    result, _w = rules.NotrackPlan(params).run(check_mode=False)
    assert result['changed'] is True and result['in_force'] is False
    fake.table = preview['diff']['after']  # now the kernel holds what was rendered
    again, _w = rules.NotrackPlan(params).run(check_mode=False)
    assert again['changed'] is False and again['in_force'] is True
    assert [call for call in fake.calls[-1:] if call[0][:1] != ['list']] == []  # unchanged: no second read needed
