"""Unit tests of conntrack_entry's desired-state logic (no kernel)."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _entry, _entryspec
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

TCP = dict(proto='tcp', src='192.0.2.1', dst='192.0.2.2', sport=40000, dport=443, tcp_state='ESTABLISHED',
           timeout=600, status=['SEEN_REPLY', 'ASSURED'])


def spec(**given):
    params = dict((k, None) for k in _entryspec.ENTRY_ARGSPEC)
    params.update(state='present', zone=0, timeout_policy='on_create', labels_mode='add')
    params.update(TCP)
    params.update(given)
    return _entryspec.EntrySpec.from_params(params)


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
        _entry.plan_update(spec(status=['SRC_NAT'], nat_src={'address': '198.51.100.1', 'port': None},
                                reply_src=None, reply_dst=None), current())


@pytest.mark.parametrize('flag,option', [('SRC_NAT', 'nat_src'), ('DST_NAT', 'nat_dst')])
def test_nat_status_flags_need_their_nat_option(flag, option):
    """The kernel ignores SRC_NAT/DST_NAT without NAT: taken silently, the second run would fail."""
    with pytest.raises(ConntrackError, match='give %s' % option) as info:
        spec(status=[flag])
    assert info.value.option == 'status'
    with pytest.raises(ConntrackError, match='is managed by the kernel'):
        spec(status=['SEQ_ADJUST'])


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
    names = _entryspec.load_label_names([str(conf)])
    assert _entryspec.parse_labels(['blocked', 3], names) == {5, 3}
    with pytest.raises(ConntrackError, match='known: blocked, eth0-in'):
        _entryspec.parse_labels(['nope'], names)


# --- bad input found with generated values --------------------------------------------------------

@pytest.mark.parametrize('value', ['\u00b2', '\u0663', '\u2460', 1.5, float('inf'), True, '5x', 128, -1])
def test_labels_are_ascii_bit_numbers_or_names(value):
    with pytest.raises(ConntrackError) as info:
        spec(labels=[value])
    assert info.value.option == 'labels' and 'labels' in info.value.msg


@pytest.mark.parametrize('address', ['fe80::1%x', 'fe80::1%eth0', '192.0.2.1/32', '192.0.2.1;', '\u0663.0.0.1'])
def test_addresses_without_scope_or_cidr(address):
    with pytest.raises(ConntrackError) as info:
        spec(src=address, dst='192.0.2.2' if ':' not in address else 'fe80::2')
    assert info.value.option == 'src'


def test_gre_is_refused_with_a_reason():
    with pytest.raises(ConntrackError, match='GRE entries are named by their keys') as info:
        spec(proto='gre', sport=None, dport=None, tcp_state=None)
    assert info.value.option == 'proto'


@pytest.mark.parametrize('proto,icmp_type,ok', [('icmp', 8, True), ('icmp', 3, False), ('icmp', 0, True),
                                                ('icmpv6', 128, True), ('icmpv6', 1, False), ('icmpv6', 135, False)])
def test_icmp_types_the_kernel_tracks(proto, icmp_type, ok):
    params = dict(proto=proto, src='192.0.2.1' if proto == 'icmp' else '2001:db8::1',
                  dst='192.0.2.2' if proto == 'icmp' else '2001:db8::2', sport=None, dport=None, tcp_state=None,
                  icmp_type=icmp_type, icmp_code=0, icmp_id=7)
    if ok:
        assert spec(**params).orig['icmp_type'] == icmp_type
    else:
        with pytest.raises(ConntrackError, match='the kernel tracks') as info:
            spec(**params)
        assert info.value.option == 'icmp_type'


def test_listen_is_the_cli_name_of_syn_sent2():
    assert spec(tcp_state='LISTEN').tcp_state == 'SYN_SENT2'
    assert spec(tcp_state='listen').tcp_state == 'SYN_SENT2'


def test_a_protocol_the_kernel_does_not_track_is_refused(monkeypatch, tmp_path):
    (tmp_path / 'nf_conntrack_sctp_timeout_established').write_text('210\n')
    assert _entryspec.kernel_tracks(33, str(tmp_path)) is False   # DCCP: removed in Linux 6.16
    assert _entryspec.kernel_tracks(132, str(tmp_path)) is True
    assert _entryspec.kernel_tracks(6, str(tmp_path)) is True
    monkeypatch.setattr(_entryspec, 'kernel_tracks', lambda protonum: protonum != 33)
    with pytest.raises(ConntrackError, match='no DCCP connection tracking') as info:
        spec(proto='dccp', tcp_state='OPEN')
    assert info.value.option == 'proto'


# --- a failed update or create changes nothing ------------------------------------------------------

class Kernel(object):
    """Stands in for the _ctwrite calls ensure() makes; labels need room, as in a namespace without ct label."""

    def __init__(self, entry, room_for_labels=False, fail_update=False):
        self.entry = entry
        self.room = room_for_labels
        self.fail_update = fail_update
        self.calls = []

    def get_entry(self, conn, ident):
        return None if self.entry is None else dict(self.entry)

    def update_entry(self, conn, ident, changes, state=None, protonum=None):
        self.calls.append(('update', dict(changes), state))
        if 'labels' in changes and not self.room:
            exc = ConntrackError('updating the entry failed')
            exc.errno = 28  # ENOSPC
            raise exc
        if self.fail_update and changes.get('labels_mask') != 0 and len(self.calls) == 2:
            raise ConntrackError('refused')

    def create_entry(self, conn, entry):
        self.calls.append(('create', dict(entry), None))
        self.entry = dict(current(), **dict((k, v) for k, v in entry.items() if k != 'labels'))

    def delete_entry(self, conn, ident, ct_id=None):
        self.calls.append(('delete', ct_id, None))
        self.entry = None
        return True


class Conn(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def kernel(monkeypatch):
    def make(entry, **kw):
        fake = Kernel(entry, **kw)
        for name in ('get_entry', 'update_entry', 'create_entry', 'delete_entry'):
            monkeypatch.setattr(_entry.ctw, name, getattr(fake, name))
        monkeypatch.setattr(_entry, 'Connection', Conn)
        return fake
    return make


def test_update_without_room_for_labels_changes_nothing(kernel):
    fake = kernel(current())
    with pytest.raises(ConntrackError, match='no room for labels') as info:
        _entry.ensure(spec(mark=7, tcp_state='TIME_WAIT', labels=[3], timeout=60, timeout_policy='refresh_below',
                           timeout_min=60))
    assert info.value.option == 'labels'
    # only the probe went out: labels under an empty mask, which change nothing
    assert fake.calls == [('update', {'labels': 0, 'labels_mask': 0}, None)]


def test_update_refused_midway_writes_the_old_values_back(kernel):
    fake = kernel(current(mark=1, labels=[2]), room_for_labels=True, fail_update=True)
    with pytest.raises(ConntrackError, match='refused'):
        _entry.ensure(spec(mark=7, tcp_state='TIME_WAIT', labels=[3]))
    restore = fake.calls[-1]
    assert restore[0] == 'update' and restore[2] == 'ESTABLISHED'
    assert restore[1]['mark'] == 1 and restore[1]['labels'] == 1 << 2


def test_create_with_labels_and_no_room_leaves_no_entry(kernel):
    fake = kernel(None)
    with pytest.raises(ConntrackError, match='no room for labels'):
        _entry.ensure(spec(labels=[3]))
    assert [call[0] for call in fake.calls] == ['create', 'update', 'delete']
    assert 'labels' not in fake.calls[0][1]
    assert fake.entry is None


def test_create_with_labels_sets_them_after_the_create(kernel):
    fake = kernel(None, room_for_labels=True)
    result = _entry.ensure(spec(labels=[3]))
    assert result['action'] == 'created'
    assert fake.calls[1] == ('update', {'labels': 1 << 3, 'labels_mask': (1 << 128) - 1}, None)


def test_check_mode_predicts_the_labels_refusal(kernel):
    fake = kernel(current())
    with pytest.raises(ConntrackError, match='no room for labels'):
        _entry.ensure(spec(labels=[3]), check_mode=True)
    assert fake.calls == [('update', {'labels': 0, 'labels_mask': 0}, None)]


# --- directional zones (orig_zone / reply_zone, listed as tuple_zone / reply_tuple_zone) ----------------

def test_a_zone_of_one_direction_names_and_creates_the_entry_so():
    orig = spec(orig_zone=4)
    assert (orig.zone, orig.zone_dir) == (4, 'orig')
    assert orig.identity()['zone'] == 4  # the original tuple is looked up in zone 4
    created = orig.creation()
    assert created['zone'] == 0 and created['tuple_zone'] == 4 and 'reply_tuple_zone' not in created
    reply = spec(reply_zone=6)
    assert reply.identity()['zone'] == 0  # named by its original tuple, which is in zone 0
    assert reply.creation()['reply_tuple_zone'] == 6
    both = spec(orig_zone=3, reply_zone=3)
    assert (both.zone, both.zone_dir) == (3, None)


def test_the_tuple_zone_goes_inside_its_tuple():
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec, _ctwrite
    attrs = _ctwrite.create_attrs(spec(orig_zone=4).creation())
    plain = _ctwrite.create_attrs(spec().creation())
    assert len(attrs) == len(plain) + 8  # one CTA_TUPLE_ZONE (be16, padded) in CTA_TUPLE_ORIG
    decoded = _ctcodec.decode_ct(attrs, 0, len(attrs), 2)
    assert decoded.get('tuple_zone') == 4 and not decoded.get('reply_tuple_zone') and not decoded.get('zone')


@pytest.mark.parametrize('given, option, words', [
    (dict(zone=2, orig_zone=4), 'orig_zone', 'one zone'),
    (dict(orig_zone=4, reply_zone=5), 'reply_zone', 'one zone per entry'),
    (dict(reply_zone=70000), 'reply_zone', '0-65535'),
])
def test_zones_the_kernel_cannot_hold_are_refused(given, option, words):
    with pytest.raises(ConntrackError) as caught:
        spec(**given)
    assert caught.value.option == option and words in caught.value.msg


def test_a_listed_item_gives_its_directional_zone_back():
    item = dict(TCP, tuple_zone=4, zone=0)
    restored = _entryspec.EntrySpec.from_params(item, item=True)
    assert (restored.zone, restored.zone_dir) == (4, 'orig')


@pytest.mark.parametrize('have, given', [
    (dict(zone=0, tuple_zone=5), dict(zone=5)),
    (dict(zone=5), dict(orig_zone=5)),
    (dict(zone=0, reply_tuple_zone=5), dict(orig_zone=5)),
])
def test_the_zone_of_an_existing_entry_cannot_change(have, given):
    with pytest.raises(ConntrackError) as caught:
        _entry.plan_update(spec(**given), current(**have))
    assert 'cannot be changed' in caught.value.msg and 'zone 5' in caught.value.msg


def test_same_directional_zone_is_no_change():
    changes, _after = _entry.plan_update(spec(orig_zone=5), current(zone=0, tuple_zone=5))
    assert changes == {}
    assert _entry.same_tuple(current(zone=0, tuple_zone=5), spec(orig_zone=5).identity())
