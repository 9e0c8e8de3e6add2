"""The fixed-layout fast path against the general decoder, on the recorded bytes and on constructed entries.

``decode_ct`` is the reference: the batch decoders must give what it gives (the same dicts, key order
included, and the same JSON text) for every recorded entry (accounting and timestamps on, NAT, helper,
labels, SCTP, zones, ICMP: the fixed layouts and every fallback). The layout table's named offsets and the
CT_DELETE builder are checked on entries built with the codec's encoders.
"""
import json
import socket
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec as codec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctlayout as layout
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw

from ctrecorded import ENTRIES, batch_of, dumped, entry_messages  # noqa: E402


def test_json_batch_writes_what_json_dumps_writes():
    assert batch_of(layout.batch_json) == [json.dumps(entry) for entry in ENTRIES]


def test_brief_batch_agrees_with_the_full_decoder():
    assert batch_of(layout.batch_brief) == [layout.brief_of(entry) for entry in ENTRIES]


def test_dict_batch_gives_the_general_decoders_dicts_in_its_key_order():
    got = batch_of(layout.batch_dict)
    assert got == ENTRIES
    assert [list(entry) for entry in got] == [list(entry) for entry in ENTRIES]


def test_batch_decoders_take_the_fixed_layouts(monkeypatch):
    """Every recorded entry has a fixed layout: the dict batch never needs the general decoder, the JSON batch
    only for entries whose other attributes it does not write itself (helper, labels)."""
    general = []

    def counted(buf, off, end, family):
        general.append(1)
        return codec.decode_ct(buf, off, end, family)

    assert len(batch_of(layout.layout_batch(layout.fixed_entry, counted))) == len(ENTRIES) and not general
    monkeypatch.setattr(layout, 'decode_ct', counted)
    assert len(batch_of(layout.layout_batch(layout._json_fast, layout.decode_ct_json))) == len(ENTRIES)
    assert len(general) == len([e for e in ENTRIES if 'helper' in e or 'labels' in e]) > 0
    assert any('dnat' in e for e in ENTRIES)  # NAT entries are written from the fixed layout too


def test_other_shapes_go_to_the_general_decoder():
    """A GRE entry (no ports, no ICMP fields) has no fixed layout."""
    entry = {'family': 'ipv4', 'protonum': 47, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'status': [], 'timeout': 9,
             'mark': 0}
    message = dumped(entry)
    assert batch_of_message(layout.batch_dict, message) == [codec.decode_ct(message, 20, len(message), socket.AF_INET)]
    assert batch_of_message(layout.batch_json, message) == [json.dumps(codec.decode_ct(message, 20, len(message),
                                                                                       socket.AF_INET))]


# --- constructed entries ------------------------------------------------------------------------------

TCP4 = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.77', 'dst': '198.51.100.1', 'sport': 1, 'dport': 80}
UDP6 = {'family': 'ipv6', 'protonum': 17, 'src': '2001:db8::1', 'dst': '2001:db8::2', 'sport': 5, 'dport': 53}
ICMP4 = {'family': 'ipv4', 'protonum': 1, 'src': '192.0.2.78', 'dst': '198.51.100.1', 'icmp_type': 8,
         'icmp_code': 0, 'icmp_id': 9}
ICMP6 = {'family': 'ipv6', 'protonum': 58, 'src': '2001:db8::1', 'dst': '2001:db8::2', 'icmp_type': 128,
         'icmp_code': 0, 'icmp_id': 10}


def batch_of_message(batch, message, seq=7):
    out = []
    assert batch(message, len(message), seq, out) is None
    return out


SHAPES = [(entry, zone) for entry in (TCP4, UDP6, ICMP4, ICMP6) for zone in (0, 7)]


@pytest.mark.parametrize('entry,zone', SHAPES)
def test_named_offsets(entry, zone):
    af = vocab.af_of(entry['family'])
    lay = layout.LAYOUTS[af, entry['protonum'] in vocab.ICMP_PROTOS, bool(zone)]
    message = dumped(entry, zone)
    start = nw.NFNL_HDRLEN
    assert lay.size == len(message) - start  # the fixed part is the whole of these entries
    assert message[start + lay.num_at] == entry['protonum']
    assert nw.NLA.unpack_from(message, start) == (lay.tuple_len, vocab.CTA_TUPLE_ORIG | nw.NLA_F_NESTED)
    assert nw.NLA.unpack_from(message, start + lay.tuple_len) == (lay.tuple_len, vocab.CTA_TUPLE_REPLY | nw.NLA_F_NESTED)
    if zone:
        assert nw.NLA.unpack_from(message, start + lay.zone_at) == (6, vocab.CTA_ZONE)
    assert nw.NLA.unpack_from(message, start + lay.status_at) == (8, vocab.CTA_STATUS)
    assert nw.NLA.unpack_from(message, start + lay.id_at) == (8, vocab.CTA_ID)
    values = lay.unpack(message, start)
    assert values[lay.index['id']] == 0xabcdef and values[lay.index['protonum']] == entry['protonum']
    assert values[lay.index['src']] == socket.inet_pton(af, entry['src'])
    if entry['protonum'] not in vocab.ICMP_PROTOS:
        for name, index in layout.ADDRESS_VALUES.items():
            assert lay.index[name] == index


@pytest.mark.parametrize('entry,zone', SHAPES)
def test_fixed_layouts_decode_as_the_general_decoder(entry, zone):
    state = codec.encode_protoinfo(6, 'ESTABLISHED') if entry['protonum'] == 6 else b''
    counters = nw.nla_nested(vocab.CTA_COUNTERS_ORIG, nw.nla(vocab.CTA_COUNTERS_PACKETS, struct.pack('>Q', 3)))
    for rest in (b'', state, state + counters):
        message = dumped(entry, zone, rest=rest)
        general = codec.decode_ct(message, 20, len(message), message[16])
        assert [list(e.items()) for e in batch_of_message(layout.batch_dict, message)] == [list(general.items())]
        assert batch_of_message(layout.batch_json, message) == [json.dumps(general)]
        assert batch_of_message(layout.batch_brief, message) == [layout.brief_of(general)]


# --- CT_DELETE of a dumped entry ---------------------------------------------------------------------------

@pytest.mark.parametrize('entry,zone', SHAPES)
def test_delete_request_copies_tuple_zone_and_id(entry, zone):
    af = vocab.af_of(entry['family'])
    message = dumped(entry, zone)
    icmp = entry['protonum'] in vocab.ICMP_PROTOS
    rest = nw.NFNL_HDRLEN + layout.LAYOUTS[af, icmp, bool(zone)].size
    request = layout.delete_request(message, rest, af, icmp, bool(zone))
    assert request == layout.delete_request_of(message, nw.NFNL_HDRLEN, len(message), af)
    got = list(nw.iter_messages(request, len(request)))
    assert got == [((1 << 8) | nw.IPCTNL_MSG_CT_DELETE, nw.NLM_F_REQUEST, 0, 16, len(request), None)]
    assert nw.NFGEN.unpack_from(request, 16) == (af, 0, 0)
    orig = codec.encode_tuple(vocab.CTA_TUPLE_ORIG, entry['family'], entry)
    want = orig + (nw.nla_be16(vocab.CTA_ZONE, zone) if zone else b'') + nw.nla_be32(vocab.CTA_ID, 0xabcdef)
    assert request[nw.NFNL_HDRLEN:] == want


def test_delete_request_on_recorded_entries():
    """The fixed-offset builder and the attribute walk make the same request for every recorded entry."""
    for message in entry_messages():
        af = message[16]
        start = nw.NFNL_HDRLEN
        icmp = message[start + layout.LAYOUTS[af, False, False].num_at] in vocab.ICMP_PROTOS
        zone_at = start + layout.LAYOUTS[af, icmp, False].zone_at
        zoned = nw.NLA.unpack_from(message, zone_at) == (6, vocab.CTA_ZONE)
        rest = start + layout.LAYOUTS[af, icmp, zoned].size
        assert layout.delete_request(message, rest, af, icmp, zoned) == \
            layout.delete_request_of(message, start, len(message), af)


def test_delete_request_of_without_a_tuple():
    assert layout.delete_request_of(nw.nla_be32(vocab.CTA_MARK, 1), 0, 8, socket.AF_INET) is None
