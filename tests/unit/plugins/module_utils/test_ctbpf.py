"""_ctbpf: the classic BPF programs of the event socket against Filter.match, on recorded and generated
event messages (run by a small cBPF interpreter, the oracle in ctevrecorded)."""
import socket

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctbpf as bpf
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_ct
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import Filter

import ctevrecorded as rec

FILTERS = [{'family': 'ipv4'}, {'family': 'ipv6'}, {'proto': 'udp'}, {'proto': 'tcp'}, {'proto': 'sctp'},
           {'proto': 'icmp'}, {'proto': 'icmpv6'}, {'proto': 'udp', 'family': 'ipv6'},
           {'proto': 'tcp', 'family': 'ipv4'}, {'proto': 47}]


def messages(datagrams):
    for data in datagrams:
        for _mtype, _flags, _seq, start, end, _code in nw.iter_messages(data, len(data)):
            yield data[start - nw.NLMSG_HDRLEN:end]


def kept(program, msg):
    return rec.cbpf_run(program, msg) != 0


@pytest.mark.parametrize('params', FILTERS)
def test_program_keeps_exactly_what_match_keeps_on_recorded_events(params):
    flt = Filter.from_params(params)
    program = bpf.event_program(flt)
    assert bpf.expressible(flt)
    for msg in messages(rec.datagrams()):
        if msg[5] != nw.NFNL_SUBSYS_CTNETLINK:
            assert kept(program, msg)  # not a conntrack event: left to the host
            continue
        assert kept(program, msg) == flt.match(decode_ct(msg, 20, len(msg), msg[16])), (params, msg.hex())


def test_no_program_without_family_or_proto():
    assert bpf.event_program(Filter.from_params({})) is None
    assert bpf.event_program(Filter.from_params({'zone': 3})) is None
    assert not bpf.expressible(Filter.from_params({'proto': 'tcp', 'dport': 443}))
    # a program for the protocol still drops the other protocols' events; the port is checked on the host
    assert bpf.event_program(Filter.from_params({'proto': 'tcp', 'dport': 443})) is not None


def test_unusual_layouts_are_kept_for_the_host():
    """A message whose headers are not where the fixed layout has them is never dropped."""
    flt = Filter.from_params({'proto': 'udp'})
    program = bpf.event_program(flt)
    entry = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 2}
    msg = bytearray(rec.event(entry))
    assert not kept(program, bytes(msg))
    msg[24:28] = b'\xff\xff\xff\xff'  # the CTA_TUPLE_IP header
    assert kept(program, bytes(msg))
    assert kept(program, bytes(msg[:40]))  # decided before any load past the end
    # (a load past the end drops, in the kernel as in the oracle: the program reads only within the original
    # tuple, which every conntrack event starts with)


TUPLE_ADDRS = {'ipv4': ['192.0.2.1', '203.0.113.5'], 'ipv6': ['2001:db8::1', '2001:db8::5']}


@st.composite
def generated(draw):
    family = draw(st.sampled_from(['ipv4', 'ipv6']))
    proto = draw(st.sampled_from([6, 17, 132, 33, 136, 47, 1 if family == 'ipv4' else 58]))
    entry = {'family': family, 'protonum': proto, 'src': draw(st.sampled_from(TUPLE_ADDRS[family])),
             'dst': draw(st.sampled_from(TUPLE_ADDRS[family]))}
    if proto in (1, 58):
        entry.update(icmp_id=7, icmp_type=8 if proto == 1 else 128, icmp_code=0)
    elif proto != 47:
        entry.update(sport=draw(st.integers(0, 65535)), dport=draw(st.integers(0, 65535)))
    return rec.event(entry, draw(st.sampled_from(['new', 'update', 'destroy'])), zone=draw(st.sampled_from([0, 9])))


@settings(max_examples=300, deadline=None)
@given(generated(), st.sampled_from(FILTERS))
def test_program_keeps_exactly_what_match_keeps_on_generated_events(msg, params):
    flt = Filter.from_params(params)
    assert kept(bpf.event_program(flt), msg) == flt.match(decode_ct(msg, 20, len(msg), msg[16]))


def test_the_kernel_takes_the_programs():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nw.NETLINK_NETFILTER)
    try:
        for params in FILTERS:
            bpf.attach(sock, bpf.event_program(Filter.from_params(params)))
    finally:
        sock.close()


def test_a_refused_program_is_a_conntrack_error():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nw.NETLINK_NETFILTER)
    try:
        with pytest.raises(ConntrackError, match='refused the event socket filter'):
            bpf.attach(sock, [(0x15, 0, 0, 0)])  # no return instruction: the kernel's checker refuses it
    finally:
        sock.close()
