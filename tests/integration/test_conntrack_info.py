"""conntrack_info end to end on the real kernel, in network namespaces made here (prefix ``ctin``).

The table of ``ctin-info`` holds entries from real traffic over its loopback (ICMP/ICMPv6 echo, TCP
over IPv6, a DNATed UDP flow, an FTP control connection with the ftp helper and its expectation)
and entries inserted over netlink (SCTP, TCP in a zone with a mark, UDP over IPv6 with labels,
ICMP). The module's entries are compared field by field with ``conntrack -L -o extended,id``.
Timeouts of the namespace are raised so nothing expires while the tests run.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

import ctin_support as ct
import conntrack_text
import record_ctnetlink

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)'),
    pytest.mark.skipif(shutil.which('conntrack') is None or shutil.which('nft') is None,
                       reason='needs conntrack-tools and nft'),
]

NS = 'ctin-info'
LONG_TIMEOUTS = ('nf_conntrack_udp_timeout', 'nf_conntrack_udp_timeout_stream', 'nf_conntrack_icmp_timeout',
                 'nf_conntrack_icmpv6_timeout', 'nf_conntrack_tcp_timeout_fin_wait',
                 'nf_conntrack_tcp_timeout_close_wait', 'nf_conntrack_tcp_timeout_last_ack',
                 'nf_conntrack_tcp_timeout_time_wait', 'nf_conntrack_tcp_timeout_close')

SETUP = """
import os
import record_ctnetlink as rec
from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
from ctfill import create_many
for knob in ['nf_conntrack_acct'] + DATA:
    with open('/proc/sys/net/netfilter/' + knob, 'w') as handle:
        handle.write('1' if knob == 'nf_conntrack_acct' else '3600')
keep = rec.traffic()
with transport.Connection() as conn:
    refused = create_many(conn, rec.INSERTED)
for sock in keep:
    sock.close()
emit(refused)
"""


@pytest.fixture(scope='module')
def table():
    with ct.netns(NS) as ns:
        ct.nft(ns, record_ctnetlink.RULESET.replace('ctin_rec', 'ctin_info'))
        assert ct.in_ns(ns, SETUP, list(LONG_TIMEOUTS)) == 0
        yield ns


def info(args=None, namespace=NS, **kw):
    rc, result, stderr = ct.run_module('conntrack_info', args or {}, namespace=namespace, **kw)
    assert 'Traceback' not in stderr and 'exception' not in result, (result, stderr)
    return rc, result


def ok(args=None, **kw):
    rc, result = info(args, **kw)
    assert rc == 0 and not result.get('failed'), result
    return result


def listing(ns, *args):
    return conntrack_text.parse_listing(ct.conntrack(ns, '-L', '-o', 'extended,id', *args).stdout)


# --- entries: the same fields conntrack -L -o extended shows ------------------------------------------------

def test_entries_equal_conntrack_extended_field_by_field(table):
    start = time.monotonic()
    result = ok({'entries': True, 'limit': 0})
    theirs = listing(table)
    slack = int(time.monotonic() - start) + 2  # timeouts tick between the two reads
    assert result['matched'] == len(theirs) == len(result['entries']) == result['count']
    by_key = dict((conntrack_text.key_of(e), e) for e in theirs)
    assert sorted(by_key) == sorted(conntrack_text.key_of(e) for e in result['entries'])
    for entry in result['entries']:
        assert conntrack_text.differences(entry, by_key[conntrack_text.key_of(entry)], timeout_slack=slack) == [], \
            entry
    protos = set((e['family'], e['proto']) for e in result['entries'])
    # real traffic and netlink-inserted entries both present
    assert {('ipv4', 'icmp'), ('ipv6', 'icmpv6'), ('ipv6', 'tcp'), ('ipv4', 'udp'), ('ipv4', 'sctp'),
            ('ipv6', 'udp')} <= protos
    ftp = [e for e in result['entries'] if e.get('dport') == 21]
    assert ftp and ftp[0]['helper'] == 'ftp' and ftp[0]['packets'] > 0
    dnat = [e for e in result['entries'] if e.get('dst') == '192.0.2.100']
    assert dnat and dnat[0]['dnat'] == {'from': '192.0.2.100', 'to': '192.0.2.1', 'from_port': 5000, 'to_port': 5001}
    labelled = [e for e in result['entries'] if e.get('labels')]
    assert [e['labels'] for e in labelled] == [[1, 70]]


def test_always_part(table):
    result = ok()
    assert result['changed'] is False
    assert result['count'] == int(ct.conntrack(table, '-C').stdout)
    assert result['max'] > 0 and result['usage_percent'] == round(100.0 * result['count'] / result['max'], 2)
    assert result['backend'] == 'netlink' and result['namespace'] == NS
    assert result['kernel']['accounting'] is True and result['kernel']['initial_namespace'] is False
    assert result['sysctls']['net.netfilter.nf_conntrack_icmp_timeout'] == 3600
    assert set(result['stats']) >= {'found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'error',
                                    'search_restart', 'clash_resolve', 'chaintoolong'}
    assert len(result['stats_per_cpu']) == os.cpu_count()
    # conntrack -S agrees on the statistics that do not move by themselves
    cli = [dict(t.split('=') for t in line.split() if '=' in t)
           for line in ct.conntrack(table, '-S').stdout.splitlines()]
    for key in ('insert', 'insert_failed', 'drop', 'early_drop', 'chaintoolong'):
        assert result['stats'][key] == sum(int(row[key]) for row in cli), key


def test_filters_through_the_module(table):
    result = ok({'entries': True, 'proto': 'tcp', 'zone': 7, 'mark': '0xdead0001'})
    assert [(e['src'], e['dport']) for e in result['entries']] == [('203.0.113.5', 443)]
    result = ok({'entries': True, 'family': 'ipv6'})
    assert set(e['family'] for e in result['entries']) == {'ipv6'}
    assert result['matched'] == len(listing(table, '-f', 'ipv6'))
    result = ok({'entries': True, 'status': ['UNREPLIED']})
    assert result['matched'] == len([e for e in listing(table) if 'UNREPLIED' in e['flags']]) == 1
    result = ok({'entries': True, 'mark': 0})
    assert result['matched'] == len(listing(table, '-m', '0'))
    result = ok({'entries': True, 'limit': 2})
    assert len(result['entries']) == 2 and result['truncated'] is True and result['matched'] > 2


def test_summary_matches_conntrack(table):
    result = ok({'summary': True, 'top': 3})
    theirs = listing(table)
    summary = result['summary']
    assert summary['total'] == len(theirs) == result['matched']
    by_proto = {}
    for entry in theirs:
        by_proto[entry['proto']] = by_proto.get(entry['proto'], 0) + 1
    assert summary['by_proto'] == by_proto
    assert summary['by_status']['UNREPLIED'] == len([e for e in theirs if 'UNREPLIED' in e['flags']])
    assert summary['by_zone'] == {'0': len(theirs) - 1, '7': 1}
    assert len(summary['top_sources']) == 3
    assert 'entries' not in result


def test_query(table):
    result = ok({'summary': True, 'query': 'summary.by_family'})
    assert set(result) >= {'query_result', 'backend', 'namespace'}
    assert 'count' not in result
    families = {}
    for entry in listing(table):
        families[entry['family']] = families.get(entry['family'], 0) + 1
    assert result['query_result'] == families
    result = ok({'entries': True, 'query': "entries[?helper=='ftp'].dport"})
    assert result['query_result'] == [21]
    result = ok({'query': 'max'})
    assert isinstance(result['query_result'], int)


def test_as_facts(table):
    result = ok({'as_facts': True, 'summary': True})
    facts = result['ansible_facts']['conntrack']
    assert facts['count'] == result['count']
    assert facts['summary'] == result['summary']
    assert 'changed' not in facts


def test_expectations(table):
    start = time.monotonic()
    result = ok({'expectations': True})
    exps = result['expectations']
    assert len(exps) == 1
    exp = exps[0]
    line = ct.conntrack(table, '-L', 'expect').stdout.split()
    slack = int(time.monotonic() - start) + 2
    assert exp['helper'] == 'ftp' and 'helper=ftp' in line
    assert exp['tuple']['dport'] == 50000 and 'dport=50000' in line
    assert exp['master']['dport'] == 21 and 'master-src=%s' % exp['master']['src'] in line
    assert 0 <= exp['timeout'] - int(line[0]) <= slack


def test_procfs_backend_gives_the_same_entries(table):
    start = time.monotonic()
    netlink = ok({'entries': True, 'limit': 0})
    procfs = ok({'entries': True, 'limit': 0, 'backend': 'procfs'})
    slack = int(time.monotonic() - start) + 2
    assert procfs['backend'] == 'procfs'
    assert procfs['count'] == netlink['count']
    ours = dict((conntrack_text.key_of(e), e) for e in netlink['entries'])
    assert sorted(ours) == sorted(conntrack_text.key_of(e) for e in procfs['entries'])
    for entry in procfs['entries']:
        other = ours[conntrack_text.key_of(entry)]
        for key in ('family', 'proto', 'protonum', 'src', 'dst', 'sport', 'dport', 'icmp_type', 'icmp_code',
                    'icmp_id', 'reply_src', 'reply_dst', 'reply_sport', 'reply_dport', 'state', 'mark', 'zone',
                    'packets', 'bytes', 'reply_packets', 'reply_bytes'):
            assert entry.get(key) == other.get(key), (key, entry, other)
        assert 0 <= other['timeout'] - entry['timeout'] <= slack
        assert set(entry['status']) == set(other['status']) & {'SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'OFFLOAD'}
    # the same filter through /proc
    filtered = ok({'entries': True, 'backend': 'procfs', 'proto': 'tcp', 'zone': 7})
    assert [e['src'] for e in filtered['entries']] == ['203.0.113.5']
    exps = ok({'expectations': True, 'backend': 'procfs'})['expectations']
    assert [(e['helper'], e['family'], e['tuple']['dport']) for e in exps] == [('ftp', 'ipv4', 50000)]


def test_check_mode_changes_nothing(table):
    before = sorted(conntrack_text.key_of(e) for e in listing(table))
    normal = ok({'entries': True, 'summary': True})
    checked = ok({'entries': True, 'summary': True}, check_mode=True)
    assert checked['changed'] is False
    assert checked['summary']['total'] == normal['summary']['total']
    assert sorted(conntrack_text.key_of(e) for e in checked['entries']) == \
        sorted(conntrack_text.key_of(e) for e in normal['entries'])
    assert sorted(conntrack_text.key_of(e) for e in listing(table)) == before


# --- bad input: msg, no traceback ----------------------------------------------------------------------------

BAD = [
    ({'entries': True}, 'ctin-does-not-exist', "namespace 'ctin-does-not-exist' does not exist"),
    ({'query': 'entries[?'}, NS, 'is not a valid JMESPath expression'),
    ({'entries': True, 'src': '192.0.2.300'}, NS, "src '192.0.2.300' is not a valid IPv4/IPv6 address or CIDR"),
    ({'entries': True, 'dst': '192.0.2.0/40'}, NS, 'is not a valid IPv4/IPv6 address or CIDR'),
    ({'entries': True, 'proto': 'tcp', 'dport': 70000}, NS, 'dport 70000 is out of range: ports are 0-65535'),
    ({'entries': True, 'dport': 80}, NS, 'dport needs proto set to one of tcp, udp'),
    ({'entries': True, 'proto': 'tcpp'}, NS, "proto 'tcpp' is not a known protocol"),
    ({'entries': True, 'proto': 'tcp', 'state': ['OPEN']}, NS, "state 'OPEN' is not a tcp state"),
    ({'entries': True, 'status': ['NEW']}, NS, "status 'NEW' is not a conntrack status flag"),
    ({'entries': True, 'family': 'ipv4', 'src': '2001:db8::1'}, NS, 'addresses and family must agree'),
    ({'entries': True, 'mark': 'zero'}, NS, "mark 'zero' is not a whole number"),
    ({'entries': True, 'limit': -5}, NS, 'limit -5 is negative'),
    ({'backend': 'files'}, NS, 'value of backend must be one of'),
    ({'namespace': '/proc/self/ns/mnt'}, None, 'is not a network namespace file'),
]


@pytest.mark.parametrize('args,namespace,words', BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input(table, args, namespace, words):
    rc, result = info(args, namespace=namespace)
    assert rc != 0 and result['failed'] is True
    assert words in result['msg'], result['msg']
    assert 'exception' not in result


def test_namespace_without_conntrack_use():
    """A fresh namespace: no rule uses conntrack, the table is empty, everything still answers."""
    with ct.netns('ctin-empty', v4=None, v6=None) as ns:
        result = ok({'entries': True, 'summary': True, 'expectations': True}, namespace=ns)
        assert result['count'] == 0 and result['entries'] == [] and result['matched'] == 0
        assert result['summary']['total'] == 0 and result['expectations'] == []
        assert result['sysctls']['net.netfilter.nf_conntrack_max'] > 0
        assert ct.conntrack(ns, '-L').stdout == ''


# --- the real ansible CLI, ad hoc ---------------------------------------------------------------------------

def test_ansible_adhoc(table, tmp_path):
    ansible = os.path.join(ct.ROOT, '.venv', 'bin', 'ansible')
    wrapper = tmp_path / 'python-in-ns'
    wrapper.write_text('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (NS, ct.PYTHON))
    wrapper.chmod(0o755)
    inventory = tmp_path / 'hosts.ini'
    inventory.write_text('[lab]\nctin-host ansible_connection=local ansible_python_interpreter=%s\n' % wrapper)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=ct.SRC, ANSIBLE_CONFIG=os.path.join(ct.ROOT, 'ansible.cfg'),
               ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([ansible, '-i', str(inventory), 'all', '-m', 'netfilter.conntrack.conntrack_info',
                           '-a', 'summary=true query=summary.by_proto'], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, cwd=str(tmp_path), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    head, _sep, body = proc.stdout.partition(' => ')
    assert head.strip() == 'ctin-host | SUCCESS', proc.stdout[-3000:]
    host = json.loads(body)
    by_proto = {}
    for entry in listing(table):
        by_proto[entry['proto']] = by_proto.get(entry['proto'], 0) + 1
    assert host['query_result'] == by_proto
    assert host['namespace'] is None  # the interpreter, not the option, put it in the namespace


def test_ansible_adhoc_on_the_lab_entries_equal_conntrack(lab, ansible_adhoc):
    """Against the lab inventory (the installed collection, as after ``make demo``): every host's entries,
    real traffic between lab hosts, are the ones ``conntrack -L`` shows in that host's namespace."""
    start = time.monotonic()
    rc, results, output = ansible_adhoc('all', 'netfilter.conntrack.conntrack_info', 'entries=true limit=0',
                                        lab.inventory_path)
    assert rc == 0, output
    assert sorted(results) == lab.hosts
    for host, result in results.items():
        theirs = listing(lab.namespace(host))
        slack = int(time.monotonic() - start) + 2
        by_key = dict((conntrack_text.key_of(e), e) for e in theirs)
        ours = dict((conntrack_text.key_of(e), e) for e in result['entries'])
        # flows of the lab's traffic are long-lived; an entry may only have expired in between
        assert set(by_key) <= set(ours), (host, sorted(set(by_key) - set(ours))[:3])
        assert len(ours) - len(by_key) <= 2, host
        for key, line in by_key.items():
            assert conntrack_text.differences(ours[key], line, timeout_slack=slack, compare_counters=False) == [], \
                (host, ours[key], line)
