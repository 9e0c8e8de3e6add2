"""Randomised conntrack tables for tests and benchmarks (created over netlink in bulk).

``random_entries(n, seed, nat=0.0)`` yields entry dicts (IPv4 and IPv6; TCP, UDP, ICMP, ICMPv6, SCTP;
marks, zones, states, status flags; with ``nat`` that share of the IPv4 TCP/UDP entries source- and/or
destination-NATed) with documentation addresses only; ``fill(n, seed, nat)`` creates them in the current
network namespace
(tests/lab/ctfill.py). Run it inside a namespace:
``ip netns exec NS python tests/lab/tables.py N [SEED]``.
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'build', 'src'))
sys.path.insert(0, HERE)

from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection  # noqa: E402
from ctfill import create_many  # noqa: E402

V4_NETS = ('192.0.2.', '198.51.100.', '203.0.113.')
TCP_STATES = ('SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'TIME_WAIT', 'CLOSE')
SCTP_STATES = ('COOKIE_WAIT', 'ESTABLISHED', 'CLOSED')
MARKS = (0, 0, 0, 1, 2, 3, 0x10, 0x11, 0xff00, 0xdead0001)
ZONES = (0, 0, 0, 0, 1, 7)
SERVICE_PORTS = (22, 53, 80, 123, 443, 5060, 8080)


def _addr(rng, v6):
    if v6:
        return '2001:db8:%x::%x' % (rng.randrange(4), rng.randrange(1, 4096))
    return rng.choice(V4_NETS) + str(rng.randrange(1, 255))


def _nat(rng, entry):
    """Give ``entry`` a source NAT, a destination NAT or both (pools of their own), ports half of the time."""
    kind = rng.random()
    if kind < 0.45 or kind >= 0.9:
        entry['nat_src'] = {'ip': '203.0.113.%d' % rng.randrange(200, 255),
                            'port': rng.randrange(20000, 60000) if rng.random() < 0.5 else None}
    if kind >= 0.45:
        entry['nat_dst'] = {'ip': '198.51.100.%d' % rng.randrange(200, 255),
                            'port': rng.randrange(20000, 60000) if rng.random() < 0.5 else None}


def _reply_key(entry):
    """The reply tuple the kernel will give ``entry`` (NAT included), to keep two entries from sharing it."""
    snat, dnat = entry.get('nat_src') or {}, entry.get('nat_dst') or {}
    # the same shape as an original tuple's key: the kernel hashes both directions in one table
    return (entry['family'], entry['protonum'], dnat.get('ip') or entry['dst'], snat.get('ip') or entry['src'],
            dnat.get('port') or entry.get('dport'), snat.get('port') or entry.get('sport'), entry.get('icmp_id'),
            entry['zone'])


def random_entries(n, seed=1, nat=0.0):
    rng = random.Random(seed)
    seen = set()
    made = 0
    while made < n:
        v6 = rng.random() < 0.35
        r = rng.random()
        proto = 6 if r < 0.5 else 17 if r < 0.8 else (58 if v6 else 1) if r < 0.93 else 132
        entry = {'family': 'ipv6' if v6 else 'ipv4', 'protonum': proto, 'src': _addr(rng, v6), 'dst': _addr(rng, v6),
                 'timeout': rng.randrange(600, 3600), 'mark': rng.choice(MARKS), 'zone': rng.choice(ZONES)}
        status = ['SEEN_REPLY'] if rng.random() < 0.7 else []
        if status and rng.random() < 0.6:
            status.append('ASSURED')
        entry['status'] = status
        if proto in (1, 58):
            entry.update(icmp_type=8 if proto == 1 else 128, icmp_code=0, icmp_id=rng.randrange(65536))
        else:
            entry.update(sport=rng.randrange(1024, 65536), dport=rng.choice(SERVICE_PORTS) if rng.random() < 0.8
                         else rng.randrange(1, 65536))
        if proto == 6:
            entry['state'] = rng.choice(TCP_STATES)
        elif proto == 132:
            entry['state'] = rng.choice(SCTP_STATES)
        # (rng is drawn from only with nat, so that the tables of every seed without it stay the same)
        if nat and not v6 and proto in (6, 17) and rng.random() < nat:
            _nat(rng, entry)
        key = (entry['family'], proto, entry['src'], entry['dst'], entry.get('sport'), entry.get('dport'),
               entry.get('icmp_id'), entry['zone'])
        reply = _reply_key(entry) if nat else None
        if key in seen or reply in seen:
            continue
        seen.add(key)
        if reply is not None:
            seen.add(reply)
        made += 1
        yield entry


def fill(n, seed=1, nat=0.0):
    """Create ``n`` random entries in the current namespace; return the number the kernel refused."""
    with Connection() as conn:
        return create_many(conn, random_entries(n, seed, nat))


if __name__ == '__main__':
    count = int(sys.argv[1])
    failed = fill(count, int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    print('created %d entries (%d refused)' % (count - failed, failed))
