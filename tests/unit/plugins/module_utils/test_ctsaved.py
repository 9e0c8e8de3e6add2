"""Unit tests of the saved form (``_ctsaved``): stripping dumped entries, encoding, and parsing that refuses
anything that is not a saved table as conntrack_info writes it, on the entries recorded from this kernel and on
generated input (hypothesis): a changed or cut saved value is a ``saved`` error, never a traceback."""
import base64
import hashlib
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctsaved as sv
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct

from ctrecorded import datagrams  # noqa: E402  pylint: disable=wrong-import-position

CONFIG = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def dumped():
    """(buf, attribute start, end, family) of every entry of the recorded conntrack dump."""
    out = []
    for data in datagrams('dump'):
        for mtype, _flags, _seq, start, end, code in nw.iter_messages(data, len(data)):
            if code is None and mtype >= nw.NFNL_MSG_MIN:
                out.append((data, start + nw.NFGEN.size, end, data[start]))
    return out


DUMPED = dumped()


def saved_messages():
    return b''.join(sv.strip(*item) for item in DUMPED)


def text_of(raw, count=None):
    return sv.encode(raw, len(sv.walk(raw)) if count is None else count)


def reference_walk(raw):
    """Every message walked attribute by attribute (the oracle of the layout fast path)."""
    out = []
    off = 0
    index = 0
    while off < len(raw):
        if off + nw.NFNL_HDRLEN > len(raw):
            raise sv._entry(index, 'is cut short')  # pylint: disable=protected-access
        mlen = struct.unpack_from('=I', raw, off)[0]
        if mlen < nw.NFNL_HDRLEN or mlen & 3 or mlen > sv.MAX_MESSAGE or off + mlen > len(raw):
            raise sv._entry(index, 'has a bad length (%d)' % mlen)  # pylint: disable=protected-access
        layout = sv._walk_one(raw, off, off + mlen, index)  # pylint: disable=protected-access
        status = struct.unpack_from('>I', raw, off + layout.status)[0] if layout.status is not None else 0
        out.append((off, off + mlen, raw[off + 16], (layout.orig, layout.zone, layout.labels), status))
        off += mlen
        index += 1
    return out


def comparable(messages):
    return [(s, e, f, (lay.orig, lay.zone, lay.labels), st_) for s, e, f, lay, st_ in messages]


# --- stripping -------------------------------------------------------------------------------------------

def test_strip_keeps_what_a_create_takes_and_drops_the_rest():
    assert DUMPED, 'the recorded dump has entries'
    for buf, start, end, family in DUMPED:
        whole = decode_ct(buf, start, end, family)
        msg = sv.strip(buf, start, end, family)
        mlen, mtype, flags, seq, pid = nw.HDR.unpack_from(msg, 0)
        assert (mlen, mtype, flags, seq, pid) == (len(msg), sv.CT_NEW, 0, 0, 0)
        assert msg[16:18] == bytes((family, 0))
        kinds = [atype for atype, _p, _e in nw.iter_attrs(msg, nw.NFNL_HDRLEN, len(msg))]
        assert set(kinds) <= sv.KEPT and {1, 2, 7} <= set(kinds)
        kept = decode_ct(msg, nw.NFNL_HDRLEN, len(msg), family)
        for key in ('id', 'use', 'packets', 'bytes', 'reply_packets', 'reply_bytes', 'start', 'stop'):
            assert key not in kept
        for key, value in whole.items():
            if key in ('src', 'dst', 'sport', 'dport', 'reply_src', 'reply_dst', 'status', 'mark', 'zone',
                       'labels', 'state', 'helper'):
                assert kept.get(key) == value, key


def test_the_stripper_of_a_dump_gives_what_strip_gives():
    stripper = sv.Stripper()
    for _round in (0, 1):  # the second round goes through the plans learned in the first
        for item in DUMPED:
            assert stripper(*item) == sv.strip(*item)
    assert stripper.plans


# --- encoding and parsing --------------------------------------------------------------------------------

def test_round_trip():
    raw = saved_messages()
    text = text_of(raw)
    head = text.split('\n', 1)[0].split()
    assert head == ['NFCT-SAVED', '1', str(len(DUMPED)), str(len(raw)), hashlib.sha256(raw).hexdigest()]
    saved = sv.parse(text)
    assert saved.raw == raw and saved.count == len(DUMPED)
    assert comparable(saved.messages) == reference_walk(raw)
    for index in range(saved.count):
        assert nw.NLA.unpack_from(saved.orig(index), 0)[1] & nw.NLA_TYPE_MASK == sv.CTA_TUPLE_ORIG
        assert saved.attrs(index) == raw[saved.messages[index][0] + 20:saved.messages[index][1]]


def test_an_empty_table_round_trips():
    saved = sv.parse(sv.encode(b'', 0))
    assert saved.count == 0 and saved.messages == []


def corrupt_body(text, body):
    return text.split('\n', 1)[0] + '\n' + body


@pytest.mark.parametrize('make, text', [
    (lambda t: 42, 'is not text'),
    (lambda t: 'hello', 'does not start with'),
    (lambda t: t.replace('NFCT-SAVED 1', 'NFCT-SAVED 2', 1), 'version'),
    (lambda t: t.replace(' %d ' % len(DUMPED), ' -3 ', 1), 'bad entry count'),
    (lambda t: t.replace(' %d ' % len(DUMPED), ' %d ' % (len(DUMPED) + 1), 1), 'header says'),
    (lambda t: t[:t.index('\n') - 1] + 'g' + t[t.index('\n'):], 'bad checksum'),
    (lambda t: t[:t.index('\n') - 1] + ('0' if t[t.index('\n') - 1] != '0' else '1') + t[t.index('\n'):],
     'does not match its checksum'),
    (lambda t: t[:len(t) // 2], 'cut'),
    (lambda t: t + '!!', 'base64'),
    (lambda t: t.split('\n')[0], 'does not hold'),
    (lambda t: corrupt_body(t, base64.b64encode(b'not zlib').decode()), 'decompressed'),
    (lambda t: corrupt_body(t, base64.b64encode(zlib.compress(b'x' * 10 ** 6)).decode()), 'does not hold'),
])
def test_a_changed_or_cut_saved_value_is_refused(make, text):
    with pytest.raises(ConntrackError) as info:
        sv.parse(make(text_of(saved_messages())))
    assert info.value.option == 'saved' and info.value.msg.startswith('saved ')
    assert text in info.value.msg


def test_a_header_cannot_ask_for_more_than_its_entries_hold():
    text = sv.encode(b'', 0).replace('NFCT-SAVED 1 0 0 ', 'NFCT-SAVED 1 2 %d ' % (2 * sv.MAX_MESSAGE + 4), 1)
    with pytest.raises(ConntrackError, match=r'size \(%d bytes\) is more than 2 entries hold' % (2 * sv.MAX_MESSAGE + 4)):
        sv.parse(text)
    long_message = message(2, GOOD + (nw.nla(8, b'\0' * sv.MAX_MESSAGE),))
    with pytest.raises(ConntrackError, match='entry 0 has a bad length'):
        sv.parse(sv.encode(long_message, 2))


def test_a_header_cannot_ask_for_more_than_the_limit():
    raw = saved_messages()
    text = 'NFCT-SAVED 1 1 %d %s\n' % (sv.MAX_BYTES + 1, hashlib.sha256(raw).hexdigest())
    with pytest.raises(ConntrackError, match='bad entry count or size'):
        sv.parse(text)


def message(family=2, attrs=(), version=0):
    body = b''.join(attrs)
    return struct.pack('=IHHII', 20 + len(body), sv.CT_NEW, 0, 0, 0) + bytes((family, version, 0, 0)) + body


TUPLE = nw.nla_nested(1, nw.nla_nested(1, nw.nla(1, b'\xc0\x00\x02\x01'), nw.nla(2, b'\xc0\x00\x02\x02')),
                      nw.nla_nested(2, nw.nla_u8(1, 17)))
TIMEOUT = nw.nla_be32(7, 30)
GOOD = (TUPLE, nw.nla_nested(2, nw.nla(1, b'')), TIMEOUT)


@pytest.mark.parametrize('raw, text', [
    (message(7, GOOD), 'family 7'),
    (message(2, GOOD, version=1), 'version 1'),
    (message(2, GOOD)[:-4], 'bad length'),
    (message(2, GOOD) + b'\0' * 8, 'cut short'),
    (message(2, GOOD + (nw.nla_be32(12, 5),)), 'type 12'),  # CTA_ID: not a saved attribute
    (message(2, (TUPLE, TIMEOUT)), 'no the reply tuple'),
    (message(2, (TUPLE, nw.nla_nested(2))), 'no a timeout'),
    (message(2, GOOD + (TIMEOUT,)), 'two attributes of type 7'),
    (message(2, GOOD + (nw.nla(3, b'\0\0'),)), 'status of a bad length'),
    (message(2, GOOD + (struct.pack('=HH', 2, 8),)), 'bad length (2)'),
    (message(2, GOOD + (struct.pack('=HH', 40, 8),)), 'bad length (40)'),
], ids=lambda value: value if isinstance(value, str) else None)
def test_every_message_is_checked(raw, text):
    with pytest.raises(ConntrackError) as info:
        sv.parse(sv.encode(raw, 1))
    assert info.value.option == 'saved' and 'saved: entry ' in info.value.msg and text in info.value.msg, info.value.msg


def test_the_layout_of_one_message_does_not_pass_a_message_that_differs():
    good = message(2, GOOD + (nw.nla_be32(8, 1),))
    # same size, the last attribute's type changed to one a saved entry does not hold
    bad = good[:-8] + struct.pack('=HH', 8, 12) + good[-4:]
    with pytest.raises(ConntrackError, match='entry 1 has an attribute .type 12.'):
        sv.walk(good + bad)
    # same size, status in place of the mark: a second layout of the size
    other = good[:-8] + nw.nla_be32(3, 0x10)
    messages = sv.walk(good + other + good + other)
    assert [m[4] for m in messages] == [0, 0x10, 0, 0x10]
    assert comparable(messages) == reference_walk(good + other + good + other)


# --- generated input -------------------------------------------------------------------------------------

RAW = saved_messages()
TEXT = text_of(RAW)


@CONFIG
@given(st.data())
def test_a_changed_text_is_a_saved_error_or_the_same_table(data):
    text = TEXT
    kind = data.draw(st.sampled_from(['cut', 'flip', 'insert', 'header']))
    if kind == 'cut':
        text = text[:data.draw(st.integers(0, len(text) - 1))]
    elif kind == 'flip':
        at = data.draw(st.integers(0, len(text) - 1))
        text = text[:at] + data.draw(st.characters()) + text[at + 1:]
    elif kind == 'insert':
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.text(min_size=1, max_size=8)) + text[at:]
    else:
        text = data.draw(st.text(max_size=100)) + text[text.index('\n'):]
    try:
        saved = sv.parse(text)
    except ConntrackError as exc:
        assert exc.option == 'saved' and exc.msg.startswith('saved')
        return
    assert saved.raw == RAW  # what parses is the table saved (a change base64 ignores, such as spaces)


@CONFIG
@given(st.data())
def test_changed_messages_with_a_good_checksum_are_checked_like_the_walk_of_each(data):
    raw = bytearray(RAW)
    for _change in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(['byte', 'cut', 'splice']))
        if kind == 'byte' and raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        elif kind == 'cut' and raw:
            at = data.draw(st.integers(0, len(raw) - 1))
            del raw[at:at + data.draw(st.integers(1, 64))]
        else:
            at = data.draw(st.integers(0, len(raw)))
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
    raw = bytes(raw)
    try:
        expected = reference_walk(raw)
    except ConntrackError as exc:
        expected = exc.msg
    try:
        # the count in the header: the walk's, or (for a raw the walk refuses) one the header check lets through
        count = len(expected) if isinstance(expected, list) else len(raw) // nw.NFNL_HDRLEN + 1
        got = comparable(sv.parse(sv.encode(raw, count)).messages)
    except ConntrackError as exc:
        assert exc.option == 'saved'
        got = exc.msg
    if isinstance(expected, list):
        assert got == expected
        for start, end, family, (orig, _zone, _labels), _status in got:
            assert family in (2, 10) and start < start + orig[0] < start + orig[1] <= end <= len(raw)
    else:
        assert isinstance(got, str) and got == expected


def test_the_encoder_streams_to_the_same_table():
    raw = saved_messages()
    messages = sv.walk(raw)
    encoder = sv.Encoder()
    for start, end, _family, _layout, _status in messages:
        encoder.add(raw[start:end], 1)
    saved = sv.parse(encoder.text())
    assert saved.raw == raw and saved.count == len(messages)
