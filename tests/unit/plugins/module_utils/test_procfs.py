"""/proc readers on texts recorded from this kernel (tests/unit/fixtures/ctnetlink_recorded.json).

/proc/net/nf_conntrack, /proc/net/nf_conntrack_expect and /proc/net/stat/nf_conntrack were read at
the same moment as a netlink dump of the same table, so each parsed line is compared with the
netlink decoder's entry on every field /proc shows.
"""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import STATS_KEYS
from ansible_collections.netfilter.conntrack.plugins.module_utils import _procfs as procfs

from ctrecorded import ENTRIES, REC  # noqa: E402

# What /proc shows of an entry: no id, no labels, no timestamps (delta-time instead), no helper, and the
# status only as [UNREPLIED] / [ASSURED] / [OFFLOAD]; ``use`` is one higher (the reader holds a reference).
PROC_FIELDS = ('family', 'proto', 'protonum', 'timeout', 'state', 'src', 'dst', 'sport', 'dport', 'icmp_type',
               'icmp_code', 'icmp_id', 'reply_src', 'reply_dst', 'reply_sport', 'reply_dport', 'reply_icmp_type',
               'reply_icmp_code', 'reply_icmp_id', 'packets', 'bytes', 'reply_packets', 'reply_bytes', 'mark', 'zone')


def test_recorded_table_matches_netlink_on_every_shown_field():
    parsed = [procfs.parse_line(line) for line in REC['proc_conntrack'].splitlines()]
    netlink = ENTRIES
    assert len(parsed) == len(netlink) == 9
    # /proc and the dump walk the same hash table in the same order
    for ours, theirs in zip(parsed, netlink):
        for key in PROC_FIELDS:
            assert ours.get(key) == theirs.get(key), (key, ours, theirs)
        shown = set(theirs['status']) & {'SEEN_REPLY', 'ASSURED', 'CONFIRMED', 'OFFLOAD', 'HW_OFFLOAD'}
        assert set(ours['status']) == shown
        assert ours['use'] == theirs['use'] + 1


V4 = ('ipv4     2 tcp      6 431999 ESTABLISHED src=192.0.2.1 dst=192.0.2.2 sport=48372 dport=21 packets=5 bytes=274 '
      'src=192.0.2.2 dst=192.0.2.1 sport=21 dport=48372 packets=4 bytes=282 [ASSURED] mark=0 zone=0 use=2')
V6 = ('ipv6     10 udp      17 29 src=2001:0db8:0000:0000:0000:0000:0000:0001 '
      'dst=2001:0db8:0001:0000:0000:0000:0000:00ff sport=5353 dport=53 [UNREPLIED] src=2001:0db8:0001:0000:0000:0000:0000:00ff '
      'dst=2001:0db8:0000:0000:0000:0000:0000:0001 sport=53 dport=5353 mark=16 zone=3 use=2')
ICMP = ('ipv4     2 icmp     1 29 src=198.51.100.9 dst=203.0.113.9 type=8 code=0 id=4242 src=203.0.113.9 '
        'dst=198.51.100.9 type=0 code=0 id=4242 mark=3 zone=0 use=2')
SYN = ('ipv4     2 tcp      6 59 SYN_RECV src=203.0.113.5 dst=192.0.2.80 sport=51000 dport=443 [UNREPLIED] '
       'src=192.0.2.80 dst=203.0.113.5 sport=443 dport=51000 mark=0 zone=7 use=2')


def test_parse_v4_assured():
    assert procfs.parse_line(V4) == {
        'family': 'ipv4', 'proto': 'tcp', 'protonum': 6, 'timeout': 431999, 'state': 'ESTABLISHED',
        'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 48372, 'dport': 21, 'packets': 5, 'bytes': 274,
        'reply_src': '192.0.2.2', 'reply_dst': '192.0.2.1', 'reply_sport': 21, 'reply_dport': 48372,
        'reply_packets': 4, 'reply_bytes': 282, 'mark': 0, 'zone': 0, 'use': 2,
        'status': ['SEEN_REPLY', 'ASSURED', 'CONFIRMED']}


def test_parse_v6_unreplied_is_normalised():
    entry = procfs.parse_line(V6)
    assert (entry['src'], entry['dst'], entry['reply_src'], entry['reply_dst']) == (
        '2001:db8::1', '2001:db8:1::ff', '2001:db8:1::ff', '2001:db8::1')
    assert entry['status'] == ['CONFIRMED']  # UNREPLIED: no SEEN_REPLY
    assert (entry['mark'], entry['zone'], entry['sport'], entry['reply_dport']) == (16, 3, 5353, 5353)
    assert 'state' not in entry and 'packets' not in entry


def test_parse_icmp():
    entry = procfs.parse_line(ICMP)
    assert (entry['icmp_type'], entry['icmp_code'], entry['icmp_id']) == (8, 0, 4242)
    assert (entry['reply_icmp_type'], entry['reply_icmp_code'], entry['reply_icmp_id']) == (0, 0, 4242)
    assert 'sport' not in entry and 'state' not in entry
    assert entry['status'] == ['SEEN_REPLY', 'CONFIRMED']


def test_parse_zone_and_unreplied_state():
    entry = procfs.parse_line(SYN)
    assert entry['zone'] == 7
    assert entry['state'] == 'SYN_RECV'
    assert entry['status'] == ['CONFIRMED']


def test_directional_zones():
    line = SYN.replace('zone=7', 'zone-orig=4')
    assert procfs.parse_line(line)['zone'] == 4


@pytest.mark.parametrize('line', ['', '   ', 'garbage', 'ipv4 2 tcp'])
def test_short_lines_are_skipped(line):
    assert procfs.parse_line(line) is None


def test_entries_reads_a_file(tmp_path):
    path = tmp_path / 'nf_conntrack'
    path.write_text('\n'.join([V4, '', V6, ICMP]) + '\n')
    got = list(procfs.entries(str(path)))
    assert [e['proto'] for e in got] == ['tcp', 'udp', 'icmp']
    assert procfs.entries(str(tmp_path / 'missing')) is None


def test_stats_from_recorded_file(tmp_path):
    path = tmp_path / 'nf_conntrack'
    path.write_text(REC['proc_stat'])
    rows = procfs.stats_per_cpu(str(path))
    assert [row['cpu'] for row in rows] == [0, 1]
    assert set(rows[0]) == set(STATS_KEYS) | {'cpu'}
    # conntrack -S, recorded at the same moment, agrees on every statistic
    for cpu, line in enumerate(REC['conntrack_stats'].splitlines()):
        values = dict(token.split('=') for token in line.split() if '=' in token)
        for key in STATS_KEYS:
            assert rows[cpu][key] == int(values[key]), key
    assert procfs.sum_stats(rows)['insert'] == 4


def test_stats_hex_columns_and_names(tmp_path):
    path = tmp_path / 'stat'
    path.write_text('entries  clashres found new invalid ignore delete chainlength insert insert_failed drop '
                    'early_drop icmp_error  expect_new expect_create expect_delete search_restart\n'
                    '0000000a  00000001 00000002 00000000 000000ff 00000000 00000000 00000003 00000010 00000004 '
                    '00000005 00000006 00000007  00000000 00000000 00000000 00000008\n')
    assert procfs.stats_per_cpu(str(path)) == [{
        'cpu': 0, 'clash_resolve': 1, 'found': 2, 'invalid': 255, 'chaintoolong': 3, 'insert': 16,
        'insert_failed': 4, 'drop': 5, 'early_drop': 6, 'error': 7, 'search_restart': 8}]
    assert procfs.stats_per_cpu(str(tmp_path / 'missing')) == []


def test_expectations_recorded(tmp_path):
    path = tmp_path / 'expect'
    path.write_text(REC['proc_expect'])
    exps = procfs.expectations(str(path))
    assert len(exps) == 1
    exp = exps[0]
    assert exp['timeout'] == 299
    assert exp['helper'] == 'ftp'
    assert exp['tuple'] == {'protonum': 6, 'proto': 'tcp', 'src': '192.0.2.1', 'dst': '192.0.2.1', 'sport': 0,
                            'dport': 50000}
    assert exp['family'] == 'ipv4'  # "l3proto = 2"


def test_expectations_v6_normalised(tmp_path):
    path = tmp_path / 'expect'
    path.write_text('299 l3proto = 10 proto=6 src=2001:0db8:0000:0000:0000:0000:0000:0001 '
                    'dst=2001:0db8:0000:0000:0000:0000:0000:0002 sport=0 dport=50000 ftp\n')
    exp = procfs.expectations(str(path))[0]
    assert exp['family'] == 'ipv6'
    assert (exp['tuple']['src'], exp['tuple']['dst']) == ('2001:db8::1', '2001:db8::2')


def test_expectations_flags_and_policy_name(tmp_path):
    """Flags are printed comma-joined, the helper with its expect policy name (exp_seq_show)."""
    path = tmp_path / 'expect'
    path.write_text('12 l3proto = 2 proto=17 src=192.0.2.1 dst=192.0.2.2 sport=0 dport=5060 '
                    'PERMANENT,INACTIVE sip/signalling\n')
    exp = procfs.expectations(str(path))[0]
    assert exp['flags'] == ['PERMANENT', 'INACTIVE']
    assert exp['helper'] == 'sip'
    assert exp['tuple']['proto'] == 'udp' and exp['tuple']['dport'] == 5060


# --- the host facts the roles read from one conntrack_info call ----------------------------------------

def test_netns_inode_is_the_namespace_files_inode(tmp_path):
    import os
    assert procfs.netns_inode() == os.stat('/proc/self/ns/net').st_ino
    assert procfs.netns_inode(str(tmp_path / 'missing')) is None


def test_memtotal_in_mib_like_ansible(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal:        8025600 kB\nMemFree:          123456 kB\n')
    assert procfs.memtotal_mb(str(meminfo)) == 7837
    meminfo.write_text('MemFree: 1 kB\n')
    assert procfs.memtotal_mb(str(meminfo)) is None


@pytest.mark.parametrize('text,cpus', [('0-1\n', 2), ('0\n', 1), ('0-3,6,8-9\n', 7)])
def test_online_cpus_from_ranges(tmp_path, text, cpus):
    online = tmp_path / 'online'
    online.write_text(text)
    assert procfs.online_cpus(str(online)) == cpus


def test_online_cpus_falls_back_to_the_cpu_count(tmp_path):
    import os
    assert procfs.online_cpus(str(tmp_path / 'missing')) == os.cpu_count()


def test_synproxy_from_its_stat_file_or_a_module_on_disk(tmp_path):
    stat = tmp_path / 'synproxy'
    modules = tmp_path / 'modules'
    (modules / '6.1.0').mkdir(parents=True)
    assert procfs.synproxy_available(str(stat), str(modules), '6.1.0') is False
    (modules / '6.1.0' / 'modules.dep').write_text(
        'kernel/net/netfilter/nft_synproxy.ko.xz: kernel/net/netfilter/nf_synproxy_core.ko.xz\n')
    assert procfs.synproxy_available(str(stat), str(modules), '6.1.0') is True
    stat.write_text('entries\tsyn_received\n')
    assert procfs.synproxy_available(str(stat), str(tmp_path / 'none'), '6.1.0') is True


def test_synproxy_counters_are_summed_hex_columns(tmp_path):
    stat = tmp_path / 'synproxy'
    stat.write_text('entries\t\tsyn_received\tcookie_invalid\tcookie_valid\tcookie_retrans\tconn_reopened\n'
                    '00000000\t0000000a\t00000001\t00000002\t00000000\t00000000\n'
                    '00000000\t00000010\t00000000\t00000003\t00000000\t00000001\n')
    assert procfs.synproxy_counters(str(stat)) == {'syn_received': 26, 'cookie_invalid': 1, 'cookie_valid': 5,
                                                   'cookie_retrans': 0, 'conn_reopened': 1}
    assert procfs.synproxy_counters(str(tmp_path / 'missing')) is None


def test_kernel_facts_carry_the_identity_and_sizing_facts():
    facts = procfs.kernel_facts(True)
    assert set(facts) >= {'netns_inode', 'memtotal_mb', 'cpus', 'synproxy', 'synproxy_counters', 'tcp'}
    assert set(facts['tcp']) == {'tcp_syncookies', 'tcp_timestamps', 'tcp_max_syn_backlog'}


def test_the_owned_table_name_is_the_one_conntrack_notrack_manages():
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _nft, _procfs
    assert _procfs.OWNED_TABLE == _nft.TABLE_NAME and _nft.TABLE_FAMILY == 'inet'
