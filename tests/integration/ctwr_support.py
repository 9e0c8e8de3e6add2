"""Helpers of the write-path integration tests (namespace prefix ``ctwr``): namespaces, module runs,
table snapshots, expectations created over netlink. Builds on ctin_support's runners."""
import contextlib

import ctin_support as ct

run_module = ct.run_module
in_ns = ct.in_ns
conntrack = ct.conntrack
fill = ct.fill

SNAPSHOT = """
from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
with transport.Connection() as conn:
    rows = [[e['family'], e['protonum'], e.get('src'), e.get('dst'), e.get('sport'), e.get('dport'),
             e.get('icmp_type'), e.get('icmp_code'), e.get('icmp_id'), e.get('zone', 0), e.get('mark', 0),
             e.get('id')] for e in conn.dump()]
emit(rows)
"""

EXPECT = """
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec as codec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
# masters with a helper, each announcing one expected connection (what an FTP PASV or TFTP RRQ makes)
F = nw.NLM_F_REQUEST | nw.NLM_F_ACK | nw.NLM_F_CREATE | nw.NLM_F_EXCL
with transport.Connection() as conn:
    for helper, proto, sport, dport, expected in DATA:
        m = {'family': 'ipv4', 'protonum': proto, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': sport,
             'dport': dport, 'timeout': 300, 'status': ['SEEN_REPLY', 'ASSURED']}
        if proto == 6:
            m['state'] = 'ESTABLISHED'
        attrs = codec.encode_ct_attrs(m) + nw.nla_nested(vocab.CTA_HELP, nw.nla_str(vocab.CTA_HELP_NAME, helper))
        conn.request(1, nw.IPCTNL_MSG_CT_NEW, F, vocab.AF_INET, 0, attrs)
        tup = {k: m[k] for k in ('src', 'dst', 'sport', 'dport', 'protonum')}
        exp = codec.encode_tuple(vocab.CTA_EXPECT_MASTER, 'ipv4', tup)
        exp += codec.encode_tuple(vocab.CTA_EXPECT_TUPLE, 'ipv4', {'src': '192.0.2.2', 'dst': '192.0.2.1',
                                                                   'protonum': proto, 'sport': 0, 'dport': expected})
        exp += codec.encode_tuple(vocab.CTA_EXPECT_MASK, 'ipv4', {'src': '255.255.255.255', 'dst': '255.255.255.255',
                                                                  'protonum': 255, 'sport': 0, 'dport': 0xffff})
        exp += nw.nla_be32(vocab.CTA_EXPECT_TIMEOUT, 600)
        conn.request(2, nw.IPCTNL_MSG_EXP_NEW, F, vocab.AF_INET, 0, exp)
    emit([e['tuple']['dport'] for e in conn.dump_expect()])
"""

EXPECT_LIST = """
from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
with transport.Connection() as conn:
    emit(sorted(e['tuple']['dport'] for e in conn.dump_expect()))
"""


@contextlib.contextmanager
def netns(name):
    """A fresh network namespace named ``name`` (prefix ctwr), always removed."""
    assert name.startswith('ctwr') and len(name) <= 15, name
    ct.sh('ip', 'netns', 'del', name, check=False)
    ct.sh('ip', 'netns', 'add', name)
    try:
        ct.sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
        yield name
    finally:
        ct.sh('ip', 'netns', 'del', name, check=False)


def snapshot(ns):
    """The table as a set of (family, proto, orig tuple, zone, mark, id) tuples."""
    return set(tuple(row) for row in in_ns(ns, SNAPSHOT))


def keys(rows):
    """(family, proto, orig tuple, zone) of snapshot rows."""
    return set(row[:10] for row in rows)


def create_expectations(ns, specs):
    return in_ns(ns, EXPECT, specs)


def expectations(ns):
    return in_ns(ns, EXPECT_LIST)


def flush_all(ns):
    conntrack(ns, '-F', check=False)
