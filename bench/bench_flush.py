"""Benchmark: conntrack_flush against conntrack-tools on identical tables.

A table of ``--entries`` (default 100,000) entries is built in a namespace (prefix ``ctwr``) where
about half match each filter: marks 1/2 alternate, half the entries are TCP to port 80 from
192.0.2.0/24 (the rest UDP or from other networks). For each case both commands run as whole
processes inside the namespace (start-up included), each on the table rebuilt identically, interleaved,
median of ``--repeat`` runs:

* mark filter:         ``conntrack -D -m 1``                               vs conntrack_flush ``mark: 1``
* proto+port+CIDR:     ``conntrack -D -p tcp --dport 80 -s 192.0.2.0 --mask-src 255.255.255.0``
                       vs conntrack_flush ``proto: tcp, dport: 80, src: 192.0.2.0/24``
* everything:          ``conntrack -F``                                    vs conntrack_flush ``all: true``

conntrack_flush runs as ``python -m ...conntrack_flush args.json`` (the module without the AnsiballZ
wrapper). The table is rebuilt before every run, under tests/lab/globallock.py's lock. Results: ratios to
conntrack-tools, written to bench/results/flush.md. Not a test: nothing asserts on time.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
SRC = os.path.join(ROOT, 'build', 'src')
MODULE = 'ansible_collections.netfilter.conntrack.plugins.modules.conntrack_flush'
NS = 'ctwr-bench'

from tests.lab.globallock import global_lock  # noqa: E402

BUILD = r'''
import sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nw
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ctfill import create_many
N = int(sys.argv[1])
def entries():
    for i in range(N):
        v6 = i %% 5 == 4
        half = i %% 2 == 0
        a, b = divmod(i, 250)
        if v6:
            src = '2001:db8:%%x::%%x' %% (a %% 65536, b + 1)
            dst = '2001:db8:ffff::1'
        else:
            src = '%%s.%%d' %% ('192.0.2' if half else '198.51.100', b + 1)
            dst = '203.0.113.%%d' %% (a %% 250 + 1)
        e = {'family': 'ipv6' if v6 else 'ipv4', 'protonum': 6 if half else 17, 'src': src, 'dst': dst,
             'sport': 1024 + a %% 60000, 'dport': 80 if half else 53, 'timeout': 3600, 'mark': 1 if half else 2,
             'status': ['SEEN_REPLY', 'ASSURED']}
        if half:
            e['state'] = 'ESTABLISHED'
        yield e
with Connection() as conn:
    conn.request(nw.NFNL_SUBSYS_CTNETLINK, nw.IPCTNL_MSG_CT_DELETE, nw.NLM_F_REQUEST | nw.NLM_F_ACK, 0,
                 nw.NFNETLINK_V1, b'')
    failed = create_many(conn, entries())
print(N - failed)
''' % (SRC, os.path.join(ROOT, 'tests', 'lab'))

CASES = [
    ('mark 1', ['conntrack', '-D', '-m', '1'], {'mark': 1}),
    ('tcp dport 80 src 192.0.2.0/24', ['conntrack', '-D', '-p', 'tcp', '--dport', '80', '-s', '192.0.2.0',
                                       '--mask-src', '255.255.255.0'],
     {'proto': 'tcp', 'dport': 80, 'src': '192.0.2.0/24'}),
    ('everything', ['conntrack', '-F'], {'all': True}),
]


def sh(argv, **kw):
    return subprocess.run(argv, check=kw.pop('check', True), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


def ns_exec(argv):
    return ['ip', 'netns', 'exec', NS] + list(argv)


def rebuild(n):
    out = sh(ns_exec([PYTHON, '-c', BUILD, str(n)])).stdout.strip()
    return int(out)


def ns_count():
    return int(sh(ns_exec(['cat', '/proc/sys/net/netfilter/nf_conntrack_count'])).stdout)


def timed(argv, env=None):
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, universal_newlines=True,
                          check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError('%s failed: %s %s' % (argv, proc.stdout[-1000:], proc.stderr[-1000:]))
    return elapsed, proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--entries', type=int, default=100000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=SRC)
    rows = []
    sh(['ip', 'netns', 'del', NS], check=False)
    sh(['ip', 'netns', 'add', NS])
    tmp = tempfile.mkdtemp(prefix='ctwr-bench-')
    try:
        with global_lock():
            for name, cli, options in CASES:
                path = os.path.join(tmp, 'args.json')
                with open(path, 'w') as handle:
                    json.dump({'ANSIBLE_MODULE_ARGS': options}, handle)
                ours_argv = ns_exec([PYTHON, '-m', MODULE, path])
                times = {'conntrack': [], 'ours': []}
                deleted = {}
                method = None
                for _round in range(args.repeat):
                    for key, argv in (('conntrack', ns_exec(cli)), ('ours', ours_argv)):
                        built = rebuild(args.entries)
                        assert built == args.entries, built
                        elapsed, out = timed(argv, env=env)
                        times[key].append(elapsed)
                        deleted[key] = built - ns_count()
                        if key == 'ours':
                            result = json.loads(out)
                            method = result['method']
                            assert result['deleted'] == deleted[key], (result['deleted'], deleted[key])
                assert deleted['conntrack'] == deleted['ours'], deleted
                med = dict((k, statistics.median(v)) for k, v in times.items())
                rows.append({'case': name, 'deleted': deleted['ours'], 'method': method,
                             'conntrack': med['conntrack'], 'ours': med['ours'], 'ratio': med['ours'] / med['conntrack']})
                print('%-32s deleted %6d  conntrack %.3f s  conntrack_flush %.3f s (%s)  ratio %.2fx'
                      % (name, deleted['ours'], med['conntrack'], med['ours'], method, rows[-1]['ratio']))
            rebuild(0)
            # the fixed cost: Python start-up and imports of the module, on an empty table
            start_cost = statistics.median(timed(ns_exec([PYTHON, '-m', MODULE, path]), env=env)[0]
                                           for _run in range(args.repeat))
    finally:
        sh(['ip', 'netns', 'del', NS], check=False)
    targets = {'mark 1': 0.2, 'tcp dport 80 src 192.0.2.0/24': 0.4, 'everything': 1.2}
    lines = ['# conntrack_flush benchmark', '',
             '- date: %s UTC' % datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M'),
             '- kernel: %s; CPUs: %d; %s' % (os.uname()[2], os.cpu_count(),
                                             sh(['conntrack', '--version']).stdout.strip() or 'conntrack'),
             '- table: %d entries (80%% IPv4, 20%% IPv6; half TCP to port 80 from 192.0.2.0/24 or 2001:db8::/32 '
             'with mark 1, half UDP with mark 2), rebuilt identically before every run' % args.entries,
             '- each command a whole process inside `ip netns exec` (start-up included), interleaved, median of %d'
             % args.repeat,
             '- conntrack_flush runs as `python -m %s args.json`; its fixed cost (start-up, imports, an empty '
             'table) is %.2f s' % (MODULE, start_cost), '',
             '| case | deleted | conntrack-tools s | conntrack_flush s | method | ratio | target | verdict |',
             '|---|---:|---:|---:|---|---:|---:|---|']
    for row in rows:
        target = targets[row['case']]
        lines.append('| %s | %d | %.3f | %.3f | %s | %.2f× | ≤ %.1f× | %s |'
                     % (row['case'], row['deleted'], row['conntrack'], row['ours'], row['method'], row['ratio'],
                        target, 'PASS' if row['ratio'] <= target else 'MISS'))
    lines += ['', 'conntrack-tools: `-D -m 1`, `-D -p tcp --dport 80 -s 192.0.2.0 --mask-src 255.255.255.0`, `-F`.',
              'Work time of conntrack_flush without its fixed cost: %s.'
              % ', '.join('%s %.3f s' % (row['case'], max(0.0, row['ours'] - start_cost)) for row in rows), '']
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'flush.md'), 'w') as handle:
        handle.write('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
