"""Unit tests of conntrack_entry's desired-state logic (no kernel)."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _entry
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

TCP = dict(proto='tcp', src='192.0.2.1', dst='192.0.2.2', sport=40000, dport=443, tcp_state='ESTABLISHED',
           timeout=600, status=['SEEN_REPLY', 'ASSURED'])


def spec(**given):
    params = dict((k, None) for k in _entry.ENTRY_ARGSPEC)
    params.update(state='present', zone=0, timeout_policy='on_create', labels_mode='add')
    params.update(TCP)
    params.update(given)
    return _entry.EntrySpec.from_params(params)


def current(**extra):
    entry = {'family': 'ipv4', 'proto': 'tcp', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 40000,
             'dport': 443, 'reply_src': '192.0.2.2', 'reply_dst': '192.0.2.1', 'reply_sport': 443,
             'reply_dport': 40000, 'zone': 0, 'status': ['SEEN_REPLY', 'ASSURED', 'CONFIRMED'], 'mark': 0,
             'timeout': 590, 'state': 'ESTABLISHED', 'id': 1}
    entry.update(extra)
    return entry


def test_same_entry_is_no_change():
    changes, _after = _entry.plan_update(spec(), current())
    assert changes == {}


def test_mark_with_mask():
    changes, after = _entry.plan_update(spec(mark='0x300', mark_mask='0xf00'), current(mark=0x2a))
    assert changes == {'mark': 0x300, 'mark_mask': 0xf00} and after['mark'] == 0x32a
    changes, _after = _entry.plan_update(spec(mark='0x300', mark_mask='0xf00'), current(mark=0x32a))
    assert changes == {}


@pytest.mark.parametrize('mode, have, want', [('add', [1], [1, 5]), ('remove', [1, 5], [1]), ('exact', [1, 9], [5])])
def test_labels_modes(mode, have, want):
    changes, after = _entry.plan_update(spec(labels=[5] if mode != 'remove' else [5], labels_mode=mode),
                                        current(labels=have))
    assert after.get('labels', []) == want and 'labels' in changes


def test_timeout_policies():
    assert _entry.plan_update(spec(timeout=5000), current(timeout=10))[0] == {}
    s = spec(timeout=5000, timeout_policy='refresh_below')
    assert s.timeout_min == 2500
    assert _entry.plan_update(s, current(timeout=2499))[0] == {'timeout': 5000}
    assert _entry.plan_update(s, current(timeout=4990))[0] == {}  # the second run: no change


def test_status_only_added():
    changes, after = _entry.plan_update(spec(status=['FIXED_TIMEOUT']), current())
    assert 'FIXED_TIMEOUT' in after['status'] and changes['status'] & 0x400
    with pytest.raises(ConntrackError, match='cannot be added'):
        _entry.plan_update(spec(status=['SRC_NAT']), current())


def test_reply_identity_and_creation():
    s = spec(src=None, dst=None, sport=None, dport=None, reply_src='198.51.100.1', reply_dst='192.0.2.1',
             reply_sport=443, reply_dport=40000)
    assert s.direction == 'reply'
    entry = s.creation()
    assert (entry['src'], entry['dst'], entry['sport'], entry['dport']) == ('192.0.2.1', '198.51.100.1', 40000, 443)


def test_nat_prediction():
    s = spec(nat_dst={'address': '192.0.2.80', 'port': 8080})
    entry = s.creation()
    assert entry['reply_src'] == '192.0.2.2'  # the kernel translates the plain inverse
    predicted = s.predicted()
    assert predicted['reply_src'] == '192.0.2.80' and predicted['reply_sport'] == 8080
    assert 'DST_NAT' in predicted['status'] and 'CONFIRMED' in predicted['status']


def test_same_tuple_other_direction():
    s = spec(src='192.0.2.2', dst='192.0.2.1', sport=443, dport=40000)
    assert not _entry.same_tuple(current(), s.identity())
    assert _entry.same_tuple(current(), spec().identity())


@pytest.mark.parametrize('given, option', [
    ({'dst': '2001:db8::1'}, 'dst'), ({'sport': 70000}, 'sport'), ({'zone': -1}, 'zone'),
    ({'proto': 'icmp', 'sport': 1, 'dport': None, 'tcp_state': None}, 'sport'),
    ({'proto': 'udp'}, 'tcp_state'), ({'status': ['DYING']}, 'status'), ({'mark_mask': 1}, 'mark_mask'),
    ({'mark': 1, 'mark_mask': 0}, 'mark_mask'), ({'labels': [128]}, 'labels'), ({'timeout': 0}, 'timeout'),
    ({'timeout_min': 5}, 'timeout_min'), ({'dport': None}, 'dport'), ({'src': 'not-an-ip'}, 'src'),
    ({'reply_src': '198.51.100.1'}, 'reply_dst'),
])
def test_bad_input_names_the_option(given, option):
    with pytest.raises(ConntrackError) as info:
        spec(**given)
    assert info.value.option == option, info.value.msg


def test_create_missing():
    assert spec(timeout=None, tcp_state=None).create_missing() == ['timeout', 'tcp_state']


def test_label_names(tmp_path):
    conf = tmp_path / 'connlabel.conf'
    conf.write_text('# comment\n0 eth0-in\n5 blocked\n')
    names = _entry.load_label_names([str(conf)])
    assert _entry.parse_labels(['blocked', 3], names) == {5, 3}
    with pytest.raises(ConntrackError, match='known: blocked, eth0-in'):
        _entry.parse_labels(['nope'], names)
