"""The one filter model: validation messages, the Python predicate, and the kernel requests it encodes.

Kernel requests are decoded here with a tiny independent netlink attribute parser (not the engine's
decoder), so the tests check the bytes the kernel will read, not the encoder against itself.
"""
import socket
import struct

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import (
    Filter, kernel_selects_exactly, parse_proto, parse_u32)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import STATUS_VALUES

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6

# CTA_* numbers from include/uapi/linux/netfilter/nfnetlink_conntrack.h, written out on purpose
CTA = {1: 'tuple_orig', 2: 'tuple_reply', 3: 'status', 8: 'mark', 18: 'zone', 21: 'mark_mask', 25: 'filter',
       26: 'status_mask'}
NESTED = {'tuple_orig', 'tuple_reply', 'filter'}


def parse_attrs(data):
    """nlattrs -> list of (type, payload bytes, nested flag)."""
    out = []
    off = 0
    while off + 4 <= len(data):
        length, atype = struct.unpack_from('=HH', data, off)
        assert length >= 4
        out.append((atype & 0x3fff, data[off + 4:off + length], bool(atype & 0x8000)))
        off += (length + 3) & ~3
    assert off == len(data), 'attributes must be padded to 4 bytes'
    return out


def parse_tuple(payload, af):
    tup = {}
    for atype, body, nested in parse_attrs(payload):
        assert nested or atype == 3
        if atype == 1:  # CTA_TUPLE_IP
            for itype, ibody, _n in parse_attrs(body):
                tup[{1: 'src', 2: 'dst', 3: 'src', 4: 'dst'}[itype]] = socket.inet_ntop(af, ibody)
                assert itype in ((1, 2) if af == AF_INET else (3, 4))
        elif atype == 2:  # CTA_TUPLE_PROTO
            for ptype, pbody, _n in parse_attrs(body):
                name = {1: 'protonum', 2: 'sport', 3: 'dport', 4: 'icmp_id', 5: 'icmp_type', 6: 'icmp_code',
                        7: 'icmpv6_id', 8: 'icmpv6_type', 9: 'icmpv6_code'}[ptype]
                tup[name] = pbody[0] if len(pbody) == 1 else struct.unpack('>H', pbody)[0]
        elif atype == 3:
            tup['zone'] = struct.unpack('>H', body)[0]
    return tup


def decode_request(family, attrs):
    """A kernel request as a plain dict, e.g. {'family': 2, 'mark': 1, 'orig': {...}, 'orig_flags': 0x38}."""
    af = family if family else AF_INET
    out = {'family': family}
    for atype, body, nested in parse_attrs(attrs):
        name = CTA[atype]
        assert nested == (name in NESTED), name
        if name in ('mark', 'mark_mask', 'status', 'status_mask'):
            out[name] = struct.unpack('>I', body)[0]
        elif name == 'zone':
            out[name] = struct.unpack('>H', body)[0]
        elif name == 'tuple_orig':
            out['orig'] = parse_tuple(body, af)
        elif name == 'tuple_reply':
            out['reply'] = parse_tuple(body, af)
        elif name == 'filter':
            for ftype, fbody, _n in parse_attrs(body):
                out[{1: 'orig_flags', 2: 'reply_flags'}[ftype]] = struct.unpack('=I', fbody)[0]
    return out


def requests(**params):
    return [decode_request(fam, attrs) for fam, attrs in Filter.from_params(params).kernel_requests()]


def error(**params):
    with pytest.raises(ConntrackError) as exc:
        Filter.from_params(params)
    return exc.value


# CTA_FILTER_FLAG bits as the kernel defines them
IP_SRC, IP_DST, PROTO_NUM, SRC_PORT, DST_PORT = 1, 2, 8, 16, 32
ICMP_TYPE, ICMP_CODE, ICMP_ID, ICMPV6_TYPE, ICMPV6_CODE, ICMPV6_ID = 64, 128, 256, 512, 1024, 2048


# --- bad input: every message names the option and says what is allowed ----------------------------

@pytest.mark.parametrize('option,value,words', [
    ('src', '192.0.2.300', ['src', "'192.0.2.300'", 'not a valid IPv4/IPv6 address or CIDR', '198.51.100.0/24']),
    ('dst', '192.0.2.0/33', ['dst', 'not a valid IPv4/IPv6 address or CIDR']),
    ('reply_src', 'example.org', ['reply_src', 'not a valid']),
    ('reply_dst', '2001:db8::g', ['reply_dst', 'not a valid']),
    ('src', '', ['src', "''", 'not a valid']),
    ('dst', '2001:db8::/129', ['dst', 'not a valid']),
    ('src', '192.0.2.1/24/8', ['src', 'not a valid']),
])
def test_invalid_address_or_cidr(option, value, words):
    exc = error(**{option: value})
    assert exc.option == option
    for word in words:
        assert word in exc.msg


@pytest.mark.parametrize('option', ['sport', 'dport', 'reply_sport', 'reply_dport'])
@pytest.mark.parametrize('value', [-1, 65536, 70000])
def test_ports_out_of_range(option, value):
    exc = error(proto='tcp', **{option: value})
    assert exc.option == option
    assert exc.msg == '%s %d is out of range: ports are 0-65535' % (option, value)


@pytest.mark.parametrize('value', [0, 65535])
def test_port_range_edges_are_valid(value):
    flt = Filter.from_params({'proto': 'udp', 'dport': value})
    assert flt.ports == {'dport': ((value, value),)}


@pytest.mark.parametrize('option', ['sport', 'dport', 'reply_sport', 'reply_dport'])
def test_port_without_proto(option):
    exc = error(**{option: 80})
    assert exc.option == option
    assert exc.msg == '%s needs proto set to one of tcp, udp, sctp, dccp, udplite' % option


@pytest.mark.parametrize('proto', ['icmp', 'gre', '47'])
def test_port_with_portless_proto(proto):
    exc = error(proto=proto, dport=80)
    assert exc.option == 'dport'
    assert 'needs proto set to one of tcp, udp' in exc.msg
    assert '(proto is %s)' % ('gre' if proto == '47' else proto) in exc.msg


@pytest.mark.parametrize('proto', ['tcp', 'udp', 'sctp', 'dccp', 'udplite'])
def test_port_protos(proto):
    assert Filter.from_params({'proto': proto, 'sport': 1}).ports == {'sport': ((1, 1),)}


@pytest.mark.parametrize('value,words', [
    ('foo', ["proto 'foo' is not a known protocol", 'tcp', 'udp', 'icmpv6', 'or a number 0-255']),
    ('256', ['proto 256 is out of range: protocol numbers are 0-255']),
    ('-1', ['proto -1 is out of range: protocol numbers are 0-255']),
    ('\u00b2', ["proto '\u00b2' is not a whole number 0-255"]),
    ('\u2460', ["proto '\u2460' is not a whole number 0-255"]),
    ('\u0663', ["proto '\u0663' is not a whole number 0-255"]),
    ('tcpp', ['not a known protocol']),
])
def test_unknown_proto(value, words):
    exc = error(proto=value)
    assert exc.option == 'proto'
    for word in words:
        assert word in exc.msg


@pytest.mark.parametrize('text,number', [('tcp', 6), ('TCP', 6), (' udp ', 17), ('icmp', 1), ('icmpv6', 58),
                                         ('icmp6', 58), ('ipv6-icmp', 58), ('sctp', 132), ('dccp', 33),
                                         ('udplite', 136), ('udp-lite', 136), ('gre', 47), ('igmp', 2),
                                         ('6', 6), ('0', 0), ('255', 255), (17, 17)])
def test_proto_names_and_numbers(text, number):
    assert parse_proto(text) == number


def test_unknown_state():
    exc = error(state=['BOGUS'])
    assert exc.option == 'state'
    assert "state 'BOGUS' is not a connection state: use one of" in exc.msg
    assert 'ESTABLISHED' in exc.msg and 'SYN_RECV' in exc.msg


def test_state_of_other_proto_is_rejected():
    exc = error(proto='tcp', state=['COOKIE_WAIT'])
    assert "state 'COOKIE_WAIT' is not a tcp state" in exc.msg
    assert 'COOKIE_WAIT' not in exc.msg.split('use one of')[1]


def test_state_with_stateless_proto():
    exc = error(proto='udp', state=['ESTABLISHED'])
    assert exc.option == 'state'
    assert exc.msg.startswith('state needs proto tcp, sctp or dccp (proto is udp)')


@pytest.mark.parametrize('given,expected', [
    (['established'], {'ESTABLISHED'}), (['syn-recv', 'SYN_SENT'], {'SYN_RECV', 'SYN_SENT'}),
    ([' time_wait '], {'TIME_WAIT'}),
])
def test_state_spelling_is_normalised(given, expected):
    assert Filter.from_params({'proto': 'tcp', 'state': given}).states == expected


def test_unknown_status():
    exc = error(status=['ASSURED', 'BOGUS'])
    assert exc.option == 'status'
    assert "status 'BOGUS' is not a conntrack status flag: use any of" in exc.msg
    for name in ('SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'SRC_NAT', 'DST_NAT', 'UNREPLIED'):
        assert name in exc.msg


def test_unreplied_and_seen_reply_exclude_each_other():
    exc = error(status=['UNREPLIED', 'SEEN_REPLY'])
    assert exc.option == 'status'
    assert 'exclude each other' in exc.msg


@pytest.mark.parametrize('params,option', [
    ({'family': 'ipv4', 'src': '2001:db8::1'}, 'src'),
    ({'family': 'ipv4', 'dst': '2001:db8::/32'}, 'dst'),
    ({'family': 'ipv6', 'reply_src': '192.0.2.1'}, 'reply_src'),
    ({'src': '192.0.2.1', 'dst': '2001:db8::1'}, 'dst'),
])
def test_address_family_clash(params, option):
    exc = error(**params)
    assert exc.option == option
    assert 'addresses and family must agree' in exc.msg
    if 'family' in params:
        assert 'family is %s' % params['family'] in exc.msg
    else:
        assert 'another address filter is ipv4' in exc.msg


@pytest.mark.parametrize('params', [{'family': 'ipv4', 'proto': 'icmpv6'}, {'family': 'ipv6', 'proto': 'icmp'},
                                    {'src': '192.0.2.1', 'proto': 'icmpv6'}])
def test_icmp_family_clash(params):
    exc = error(**params)
    assert exc.option == 'proto'
    assert 'does not exist in family' in exc.msg


def test_icmp_fields_need_icmp_proto():
    exc = error(proto='tcp', icmp_type=8)
    assert exc.option == 'icmp_type'
    assert exc.msg == 'icmp_type needs proto icmp or icmpv6'


@pytest.mark.parametrize('option,value,limit', [('icmp_type', 256, 255), ('icmp_code', -1, 255),
                                                ('icmp_id', 65536, 65535)])
def test_icmp_ranges(option, value, limit):
    exc = error(proto='icmp', **{option: value})
    assert exc.option == option
    assert 'out of range' in exc.msg and '0-%d' % limit in exc.msg


@pytest.mark.parametrize('value', [-1, 65536])
def test_zone_range(value):
    exc = error(zone=value)
    assert exc.option == 'zone'
    assert exc.msg == 'zone %d is out of range: zones are 0-65535' % value


# --- marks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('value,number', [(0, 0), ('0', 0), ('0x0', 0), (16, 16), ('16', 16), ('0x10', 16),
                                          (' 0x10 ', 16), ('0XFF', 255), ('4294967295', 0xffffffff),
                                          ('0xffffffff', 0xffffffff)])
def test_parse_u32(value, number):
    assert parse_u32(value, 'mark') == number


@pytest.mark.parametrize('value,words', [
    (True, 'mark True is not a whole number 0-4294967295'), ('abc', "mark 'abc' is not a whole number"),
    (-1, 'mark -1 is out of range'), (2 ** 32, 'mark 4294967296 is out of range'),
    ('0x1ffffffff', 'out of range'), ('1.5', 'is not a whole number'), ('\u0663', 'is not a whole number'),
    (float('inf'), 'is not a whole number'), (1.5, 'is not a whole number'),
])
def test_bad_mark(value, words):
    exc = error(mark=value)
    assert exc.option == 'mark'
    assert words in exc.msg


def test_bad_mark_mask():
    exc = error(mark=1, mark_mask='ff')
    assert exc.option == 'mark_mask'
    assert 'is not a whole number' in exc.msg


def test_mark_mask_needs_mark():
    exc = error(mark_mask='0xff')
    assert exc.option == 'mark_mask'
    assert 'mark_mask needs mark' in exc.msg


def test_mark_zero_is_a_real_filter():
    """pyroute2 drops a falsy mark (DESIGN.md Traps); here mark=0 filters in Python and in the kernel."""
    flt = Filter.from_params({'mark': 0})
    assert not flt.empty
    assert flt.mark == 0 and flt.mark_mask == 0xffffffff
    assert flt.match({'family': 'ipv4', 'mark': 0})
    assert not flt.match({'family': 'ipv4', 'mark': 1})
    assert requests(mark=0) == [{'family': 0, 'mark': 0, 'mark_mask': 0xffffffff}]
    assert requests(mark='0') == [{'family': 0, 'mark': 0, 'mark_mask': 0xffffffff}]


def test_mark_with_mask():
    flt = Filter.from_params({'mark': '0x1ff', 'mark_mask': '0xff'})
    assert flt.mark == 0xff  # value is masked like the kernel does
    assert flt.match({'mark': 0xff}) and flt.match({'mark': 0xdead00ff})
    assert not flt.match({'mark': 0x1fe})
    assert requests(mark='0x10', mark_mask='0xf0') == [{'family': 0, 'mark': 0x10, 'mark_mask': 0xf0}]


# --- the Python predicate -------------------------------------------------------------------------------

ENTRY4 = {'family': 'ipv4', 'proto': 'tcp', 'protonum': 6, 'src': '192.0.2.1', 'dst': '198.51.100.7',
          'sport': 40000, 'dport': 443, 'reply_src': '198.51.100.7', 'reply_dst': '192.0.2.1',
          'reply_sport': 443, 'reply_dport': 40000, 'state': 'ESTABLISHED', 'zone': 0, 'mark': 0x10,
          'status': ['SEEN_REPLY', 'ASSURED', 'CONFIRMED']}
ENTRY6 = {'family': 'ipv6', 'proto': 'icmpv6', 'protonum': 58, 'src': '2001:db8::1', 'dst': '2001:db8:1::2',
          'icmp_type': 128, 'icmp_code': 0, 'icmp_id': 7, 'reply_src': '2001:db8:1::2', 'reply_dst': '2001:db8::1',
          'reply_icmp_type': 129, 'reply_icmp_code': 0, 'reply_icmp_id': 7, 'zone': 3, 'mark': 0,
          'status': ['CONFIRMED']}


@pytest.mark.parametrize('params,m4,m6', [
    ({}, True, True),
    ({'family': 'ipv4'}, True, False),
    ({'family': 'ipv6'}, False, True),
    ({'proto': 'tcp'}, True, False),
    ({'proto': 'icmpv6'}, False, True),
    ({'src': '192.0.2.0/24'}, True, False),
    ({'src': '192.0.2.0/255.255.255.0'}, True, False),
    ({'src': '192.0.2.1'}, True, False),
    ({'src': '192.0.2.2'}, False, False),
    ({'dst': '2001:db8:1::/48'}, False, True),
    ({'dst': '2001:db8:1:0:0:0:0:2'}, False, True),  # any spelling of the address
    ({'reply_src': '198.51.100.0/24'}, True, False),
    ({'reply_dst': '2001:db8::1'}, False, True),
    ({'proto': 'tcp', 'dport': 443}, True, False),
    ({'proto': 'tcp', 'dport': 80}, False, False),
    ({'proto': 'tcp', 'reply_sport': 443}, True, False),
    ({'proto': 'icmpv6', 'icmp_type': 128, 'icmp_id': 7}, False, True),
    ({'proto': 'icmpv6', 'icmp_id': 8}, False, False),
    ({'mark': 0x10}, True, False),
    ({'mark': 0}, False, True),
    ({'mark': 0, 'mark_mask': 0xf}, True, True),
    ({'zone': 3}, False, True),
    ({'zone': 0}, True, False),
    ({'state': ['ESTABLISHED']}, True, False),
    ({'status': ['ASSURED']}, True, False),
    ({'status': ['UNREPLIED']}, False, True),
    ({'status': ['SEEN_REPLY', 'ASSURED']}, True, False),
    ({'status': ['CONFIRMED']}, True, True),
])
def test_match(params, m4, m6):
    flt = Filter.from_params(params)
    assert (flt.match(ENTRY4), flt.match(ENTRY6)) == (m4, m6)
    assert flt.empty == (not params)


# --- kernel requests --------------------------------------------------------------------------------------

def test_no_filter_is_one_unspec_dump():
    assert requests() == [{'family': 0}]


@pytest.mark.parametrize('family,af', [('ipv4', AF_INET), ('ipv6', AF_INET6)])
def test_family_only(family, af):
    assert requests(family=family) == [{'family': af}]


def test_mark_status_zone_in_one_unspec_request():
    assert requests(mark=3, zone=7, status=['ASSURED', 'UNREPLIED']) == [{
        'family': 0, 'mark': 3, 'mark_mask': 0xffffffff, 'zone': 7,
        'status': 4, 'status_mask': 4 | 2}]


def test_zone_zero_is_sent():
    assert requests(zone=0) == [{'family': 0, 'zone': 0}]


def test_tuple_fields_without_family_make_two_requests():
    """CTA_FILTER needs a concrete family: one request per family (DESIGN.md Traps)."""
    got = requests(proto='tcp', dport=443)
    assert got == [
        {'family': AF_INET, 'orig': {'protonum': 6, 'dport': 443}, 'orig_flags': PROTO_NUM | DST_PORT,
         'reply_flags': 0},
        {'family': AF_INET6, 'orig': {'protonum': 6, 'dport': 443}, 'orig_flags': PROTO_NUM | DST_PORT,
         'reply_flags': 0},
    ]


def test_proto_alone_is_a_tuple_filter_per_family():
    got = requests(proto='udp', mark=1)
    assert [r['family'] for r in got] == [AF_INET, AF_INET6]
    for req in got:
        assert req['orig'] == {'protonum': 17} and req['orig_flags'] == PROTO_NUM
        assert req['mark'] == 1


def test_host_addresses_set_the_family():
    got = requests(src='192.0.2.1', dst='198.51.100.2', proto='tcp', sport=1, dport=2)
    assert got == [{'family': AF_INET,
                    'orig': {'src': '192.0.2.1', 'dst': '198.51.100.2', 'protonum': 6, 'sport': 1, 'dport': 2},
                    'orig_flags': IP_SRC | IP_DST | PROTO_NUM | SRC_PORT | DST_PORT, 'reply_flags': 0}]


def test_ipv6_addresses_are_filtered_in_python_only():
    """The kernel's IPv6 address tuple filter is inverted (returns all BUT the address), measured on 6.18:
    tests/integration/test_filter_kernel.py::test_ipv6_address_filter_is_inverted_in_the_kernel."""
    got = requests(src='2001:db8::1', dst='2001:db8::2', proto='tcp', sport=1, dport=2)
    assert got == [{'family': AF_INET6, 'orig': {'protonum': 6, 'sport': 1, 'dport': 2},
                    'orig_flags': PROTO_NUM | SRC_PORT | DST_PORT, 'reply_flags': 0}]
    assert requests(src='2001:db8::1') == [{'family': AF_INET6}]
    assert kernel_selects_exactly(Filter.from_params({'src': '2001:db8::1'}), '6.18.0') is False
    assert Filter.from_params({'src': '2001:db8::1'}).match({'family': 'ipv6', 'src': '2001:db8::1'})


def test_cidr_is_filtered_in_python_only():
    assert requests(src='192.0.2.0/24') == [{'family': AF_INET}]
    assert requests(dst='2001:db8::/32', mark=1) == [{'family': AF_INET6, 'mark': 1, 'mark_mask': 0xffffffff}]


def test_reply_ipv4_addresses_and_ports_go_to_the_kernel():
    """Reply-direction CTA_FILTER flags work for IPv4 addresses and TCP/UDP ports (test_filter_kernel.py)."""
    got = requests(reply_src='192.0.2.1')
    assert got == [{'family': AF_INET, 'reply': {'src': '192.0.2.1'}, 'orig_flags': 0, 'reply_flags': IP_SRC}]
    got = requests(proto='tcp', reply_sport=443)
    assert [r['family'] for r in got] == [AF_INET, AF_INET6]
    assert all(r['reply_flags'] == PROTO_NUM | SRC_PORT and r['reply'] == {'protonum': 6, 'sport': 443} for r in got)


def test_reply_ipv6_addresses_stay_in_python():
    assert requests(reply_src='2001:db8::1') == [{'family': AF_INET6}]


@pytest.mark.parametrize('proto', ['sctp', 'dccp', 'udplite'])
def test_ports_of_other_protos_are_not_sent(proto):
    """The kernel's tuple filter compares ports of TCP/UDP only (DESIGN.md Traps)."""
    got = requests(proto=proto, dport=9, family='ipv4')
    assert got == [{'family': AF_INET, 'orig': {'protonum': parse_proto(proto)}, 'orig_flags': PROTO_NUM,
                    'reply_flags': 0}]


@pytest.mark.parametrize('proto,family,flags,names,echo', [
    ('icmp', AF_INET, ICMP_TYPE | ICMP_CODE | ICMP_ID, ('icmp_type', 'icmp_code', 'icmp_id'), 8),
    ('icmpv6', AF_INET6, ICMPV6_TYPE | ICMPV6_CODE | ICMPV6_ID, ('icmpv6_type', 'icmpv6_code', 'icmpv6_id'), 128),
])
def test_icmp_fields(proto, family, flags, names, echo):
    got = requests(proto=proto, icmp_type=echo, icmp_code=0, icmp_id=77)
    assert got == [{'family': family, 'orig': dict(zip(('protonum',) + names, (parse_proto(proto), echo, 0, 77))),
                    'orig_flags': PROTO_NUM | flags, 'reply_flags': 0}]


@pytest.mark.parametrize('params,exact', [
    ({}, True),
    ({'family': 'ipv6'}, True),
    ({'mark': 0}, True),
    ({'zone': 1, 'status': ['ASSURED']}, True),
    ({'proto': 'tcp', 'dport': 22, 'src': '192.0.2.1'}, True),
    ({'proto': 'icmp', 'icmp_id': 1}, True),
    ({'src': '192.0.2.0/24'}, False),
    ({'reply_src': '192.0.2.1'}, False),
    ({'proto': 'tcp', 'reply_dport': 1}, False),
    ({'proto': 'tcp', 'state': ['ESTABLISHED']}, False),
    ({'proto': 'sctp', 'dport': 1}, False),
])
def test_kernel_exact(params, exact):
    assert kernel_selects_exactly(Filter.from_params(params), '6.18.0') is exact


def test_describe_and_given():
    flt = Filter.from_params({'proto': 'tcp', 'dport': 22, 'src': None, 'state': []})
    assert flt.given == {'proto': 'tcp', 'dport': 22}
    assert flt.describe() == 'dport=22, proto=tcp'
    assert Filter.from_params({}).describe() == 'no filter'


def test_status_bits_are_the_kernels():
    """enum ip_conntrack_status: the bit numbers the kernel uses."""
    assert STATUS_VALUES['SEEN_REPLY'] == 2 and STATUS_VALUES['ASSURED'] == 4
    assert STATUS_VALUES['CONFIRMED'] == 8 and STATUS_VALUES['DST_NAT'] == 32
    assert STATUS_VALUES['OFFLOAD'] == 1 << 14


# --- one decision for "the kernel filters this exactly", by kernel release -------------------------

RELEASES = ('5.4.0-150-generic', '5.15.0-91-generic', '6.1.0-18-amd64', '6.6.30', '6.8.0-31-generic', '6.18.0')
# filter -> the releases (by index in RELEASES) on which the kernel selects it exactly
EXACT_FROM = [
    ({}, 0),                                               # no filter: everything, on any kernel
    ({'family': 'ipv4'}, 0),                               # the nfgen family of the dump
    ({'mark': 1}, 0),                                      # CTA_MARK/CTA_MARK_MASK in dumps: old
    ({'proto': 'tcp', 'dport': 80}, 1),                    # CTA_FILTER: 5.8
    ({'src': '192.0.2.1'}, 1),
    ({'status': ['ASSURED']}, 2),                          # CTA_STATUS filter: 5.19
    ({'zone': 5}, 4),                                      # CTA_ZONE in dumps: 6.8
    ({'zone': 5, 'proto': 'tcp', 'dport': 80}, 4),         # the case: never exact before 6.8
    ({'mark': 1, 'zone': 5, 'status': ['ASSURED']}, 4),
    ({'proto': 'tcp', 'state': ['ESTABLISHED']}, None),    # states: Python only
    ({'src': '192.0.2.0/24'}, None),                       # CIDRs: Python only
    ({'src': '2001:db8::1'}, None),                        # the kernel's IPv6 tuple compare is inverted
    ({'proto': 'sctp', 'dport': 80}, None),                # ports in the kernel: TCP/UDP only
    ({'reply_src': '192.0.2.1'}, None),
]


@pytest.mark.parametrize('params,first', EXACT_FROM, ids=[str(p) for p, _f in EXACT_FROM])
@pytest.mark.parametrize('index', range(len(RELEASES)), ids=RELEASES)
def test_kernel_selects_exactly_by_release(params, first, index):
    flt = Filter.from_params(params)
    expected = first is not None and index >= first
    assert kernel_selects_exactly(flt, RELEASES[index]) is expected


@pytest.mark.parametrize('index', range(len(RELEASES)), ids=RELEASES)
def test_exclusions_are_never_exact(index):
    flt = Filter.from_params({'mark': 1})
    flt.exclude(Filter.port_guard('ipv4', 6, [(443, 443)]))
    assert not flt.empty
    assert kernel_selects_exactly(flt, RELEASES[index]) is False


def test_kernel_flushable_uses_the_same_decision():
    from ansible_collections.netfilter.conntrack.plugins.module_utils._ctflush import kernel_flushable
    zone = Filter.from_params({'zone': 5})
    assert [kernel_flushable(zone, r) for r in RELEASES] == [False, False, False, False, True, True]
    tuple_filter = Filter.from_params({'proto': 'tcp', 'dport': 80})
    assert not any(kernel_flushable(tuple_filter, r) for r in RELEASES)  # no CTA_FILTER in a flush
    guarded = Filter.from_params({'mark': 1})
    guarded.exclude(Filter.port_guard(None, 6, [(443, 443)]))
    assert not any(kernel_flushable(guarded, r) for r in RELEASES)


def test_port_guard_matches_tcp_to_the_ports_only():
    guard = Filter.port_guard('ipv4', 6, [(443, 443), (8000, 8080)])
    base = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 40000}
    assert guard.match(dict(base, dport=443))
    assert guard.match(dict(base, dport=8080))
    assert not guard.match(dict(base, dport=22))
    assert not guard.match(dict(base, dport=443, protonum=17))
    assert not guard.match(dict(base, dport=443, family='ipv6'))
    flt = Filter.from_params({})
    flt.exclude(guard)
    assert flt.match(dict(base, dport=22)) and not flt.match(dict(base, dport=443))
    every_port = Filter.port_guard(None, 6, [])
    assert every_port.match(dict(base, dport=1, family='ipv6'))


@pytest.mark.parametrize('proto,icmp_type,ok', [('icmp', 8, True), ('icmp', 3, False), ('icmpv6', 128, True),
                                                ('icmpv6', 1, False), ('icmpv6', 135, False), ('ipv6-icmp', 139, True)])
def test_icmp_types_the_kernel_does_not_track_are_refused(proto, icmp_type, ok):
    """The kernel refuses a tuple filter with such a type (EINVAL): say so, naming the option."""
    if ok:
        assert Filter.from_params({'proto': proto, 'icmp_type': icmp_type}).icmp['icmp_type'] == {icmp_type}
    else:
        with pytest.raises(ConntrackError) as info:
            Filter.from_params({'proto': proto, 'icmp_type': icmp_type})
        assert info.value.option == 'icmp_type' and 'the kernel tracks' in info.value.msg
