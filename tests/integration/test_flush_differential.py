"""Differential test: what conntrack_flush deletes == what ``conntrack -D`` deletes with the same filter,
on identical randomized tables, and == an independent oracle; nothing outside the filter is touched.

Two namespaces (``ctwr-da`` for conntrack_flush, ``ctwr-db`` for conntrack-tools) get the same 6,000
entries (tests/lab/tables.py: IPv4 and IPv6; TCP, UDP, ICMP, ICMPv6, SCTP; marks; zones; states; status
flags), rebuilt before every filter. For each of ~55 filters (the fixed and seeded random filters of
test_info_differential, which cover every option and the kernel traps):

* conntrack_flush runs first in check mode (the table must not change; the count must be the oracle's),
  then for real (as the module process, the method it chooses: kernel_flush or batched_delete);
* ``conntrack -D`` with the equivalent options runs in the other namespace, where conntrack-tools can
  express the filter (test_info_differential.cli_args; ``-m`` with ``-u`` is wrong in 1.4.7 and left out);
* deleted sets are (family, proto, orig tuple, zone) keys; the entries left must keep their ids.
"""
import os
import random
import shutil

import pytest

import ctwr_support as ws  # noqa: I100 (puts tests/unit/fixtures on sys.path, via ctin_support)
import conntrack_text  # noqa: E402
from test_info_differential import cli_args, fixed_filters, oracle_match, random_filters

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)'),
    pytest.mark.skipif(shutil.which('conntrack') is None, reason='needs conntrack-tools'),
    pytest.mark.slow,
]

SIZE = 6000
SEED = 424242


def rebuild(ns):
    ws.flush_all(ns)
    assert ws.fill(ns, SIZE, SEED) == 0


def listed(ns):
    return conntrack_text.parse_listing(ws.conntrack(ns, '-L', '-o', 'extended').stdout)


def test_flush_equals_conntrack_delete():
    with ws.netns('ctwr-da') as ours_ns, ws.netns('ctwr-db') as cli_ns:
        rebuild(ours_ns)
        full = listed(ours_ns)
        assert len(full) == SIZE
        assert {e['family'] for e in full} == {'ipv4', 'ipv6'}
        assert {e['proto'] for e in full} >= {'tcp', 'udp', 'icmp', 'icmpv6', 'sctp'}
        assert len({e.get('mark', 0) for e in full}) > 3 and len({e.get('zone', 0) for e in full}) > 2
        rng = random.Random(SEED)
        filters = fixed_filters(full, rng) + random_filters(full, rng, 15)
        assert len(filters) >= 30
        all_keys = set(conntrack_text.key_of(e) for e in full)
        problems = []
        compared_with_cli = methods = 0
        kernel_flushes = 0
        for flt in filters:
            args = dict(flt) if flt else {'all': True}
            oracle = set(conntrack_text.key_of(e) for e in full if oracle_match(flt, e))
            before = ws.snapshot(ours_ns)
            rc, res, err = ws.run_module('conntrack_flush', args, namespace=ours_ns, check_mode=True)
            assert rc == 0, (flt, res, err[-2000:])
            if ws.snapshot(ours_ns) != before:
                problems.append('%s: check mode changed the table' % flt)
            if res['deleted'] != len(oracle):
                problems.append('%s: check mode counts %d, oracle %d' % (flt, res['deleted'], len(oracle)))
            rc, res, err = ws.run_module('conntrack_flush', args, namespace=ours_ns)
            assert rc == 0, (flt, res, err[-2000:])
            after = ws.snapshot(ours_ns)
            ours = ws.keys(before) - ws.keys(after)
            kernel_flushes += res['method'] == 'kernel_flush'
            methods += 1
            if ours != oracle:
                problems.append('%s (%s): deleted %d, oracle %d (only ours %s, only oracle %s)'
                                % (flt, res['method'], len(ours), len(oracle), sorted(ours - oracle)[:2],
                                   sorted(oracle - ours)[:2]))
            if after != set(r for r in before if r[:10] not in oracle):
                problems.append('%s: entries outside the filter changed' % flt)
            if res['deleted'] != len(ours):
                problems.append('%s: reports %d deleted, %d gone' % (flt, res['deleted'], len(ours)))
            cli = cli_args(flt)
            if cli is not None and not (flt.get('family') == 'ipv6' and len(flt) == 1):
                rebuild(cli_ns)
                proc = ws.conntrack(cli_ns, '-D', *cli, check=False)
                theirs = all_keys - set(conntrack_text.key_of(e) for e in listed(cli_ns))
                compared_with_cli += 1
                if ours != theirs:
                    problems.append('%s (conntrack -D %s, rc %d): ours %d, conntrack %d (only ours %s, only '
                                    'conntrack %s)' % (flt, ' '.join(cli), proc.returncode, len(ours), len(theirs),
                                                       sorted(ours - theirs)[:2], sorted(theirs - ours)[:2]))
            rebuild(ours_ns)
        assert problems == [], '\n'.join(problems)
        assert compared_with_cli >= 30
        assert kernel_flushes >= 5 and methods - kernel_flushes >= 20
