"""Benchmark: conntrack_info against conntrack-tools and pyroute2 on the same table.

One run builds a table of ``--entries`` (default 250,000) random entries, IPv4 and IPv6, in a
lab namespace (prefix ``ctbn``), then, for three filters (none; a mark; proto+dport), measures
wall time and peak RSS of whole processes started inside that namespace:

* ``conntrack -L [filter] > /dev/null``                 (conntrack-tools, the reference: 1.0x)
* conntrack_info listing (``entries: true, limit: 0``) (the module run as a process, what the
  module runs on a host minus the AnsiballZ wrapper: Python start-up and every import included)
* conntrack_info summary (``summary: true``)
* pyroute2 ``Conntrack().dump_entries()`` for AF_INET and AF_INET6 (capped: ``--pyroute2-cap``)

then, on a near-empty table in a second namespace, the ad-hoc cost of
``ansible -m netfilter.conntrack.conntrack_info`` against ``ansible -m ansible.builtin.ping``
on the same lab host (its interpreter is a wrapper that runs the project's Python in the
namespace).

Times are medians of ``--repeat`` runs (ad-hoc: ``--adhoc-repeat``); peak RSS is what
``/usr/bin/time -f %M`` reports for the process. Results are ratios to ``conntrack -L`` on the
same table in the same run, written to ``bench/results/info.md`` and ``info.json``.

Run as root from the repository: ``bench/run`` or ``.venv/bin/python bench/bench_info.py``.
Not a test: nothing here asserts on time; each target is reported as PASS or MISS.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
ANSIBLE = os.path.join(ROOT, '.venv', 'bin', 'ansible')
SRC = os.path.join(ROOT, 'build', 'src')
MODULE = 'ansible_collections.netfilter.conntrack.plugins.modules.conntrack_info'
PREFIX = 'ctbn'
TIME = '/usr/bin/time'

from tests.lab.globallock import global_lock  # noqa: E402

# The three filters: (name, conntrack -L arguments, module filter options, pyroute2 filter code).
# conntrack-tools 1.4.7 sends the mark (with family) to the kernel and filters proto/port in
# userspace; conntrack_info sends both to the kernel (CTA_MARK/CTA_FILTER, TCP/UDP ports).
FILTERS = [
    ('none', [], {}, 'dict()'),
    ('mark 0x1', ['--mark', '1'], {'mark': 1}, 'dict(mark=1)'),
    ('tcp dport 443', ['-p', 'tcp', '--dport', '443'], {'proto': 'tcp', 'dport': 443},
     'dict(tuple_orig=NFCTAttrTuple(family=fam, proto=6, dport=443))'),
]

PYROUTE2_SCRIPT = r'''
import socket, sys
from pyroute2 import Conntrack
from pyroute2.conntrack import NFCTAttrTuple
n = 0
for fam in (socket.AF_INET, socket.AF_INET6):  # Conntrack() alone dumps AF_INET only
    ct = Conntrack(nfgen_family=fam)
    try:
        for entry in ct.dump_entries(**%s):
            n += 1
    finally:
        ct.close()
sys.stderr.write('pyroute2: %%d entries\n' %% n)
'''

TARGETS = {
    # key: (description, limit, kind)
    'listing_none': ('full listing, time', 1.2),
    'summary_none': ('summary (no filter), time', 0.8),
    'listing_proto_port': ('proto+port filtered listing, time', 0.35),
    'summary_rss': ('summary peak RSS, MB (any filter)', 64.0),
    'adhoc': ('ad-hoc conntrack_info / ping, time', 1.15),
}


def log(msg):
    sys.stderr.write('[bench_info] %s\n' % msg)
    sys.stderr.flush()


# --- process measurement --------------------------------------------------------------------

class Sample(object):
    def __init__(self, wall, rss_kb, rc, stderr, timed_out=False):
        self.wall, self.rss_kb, self.rc, self.stderr, self.timed_out = wall, rss_kb, rc, stderr, timed_out


def measure(argv, env=None, timeout=None, stdout=subprocess.DEVNULL, cwd=None):
    """Run ``argv``; return its wall time, peak RSS (kB), rc and stderr.

    The command runs under ``/usr/bin/time -f %M``: its peak RSS is that of a child forked from
    the small ``time`` process (a child forked from this Python process would inherit our own
    high-water mark). ``ip netns exec`` execs the command in place, so the RSS is the command's.
    Wall time is taken here (time's fork/exec adds about a millisecond).
    """
    errfile = tempfile.TemporaryFile()
    with tempfile.NamedTemporaryFile(prefix='ctbn-time-') as timefile:
        full = [TIME, '-q', '-f', '%M', '-o', timefile.name] + list(argv)
        start = time.monotonic()
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=stdout, stderr=errfile, env=env, cwd=cwd,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.monotonic() - start
        timefile.seek(0)
        lines = [line for line in timefile.read().decode().splitlines() if line.strip()]
    rss_kb = int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0
    errfile.seek(0)
    err = errfile.read().decode('utf-8', 'replace')
    errfile.close()
    return Sample(wall, rss_kb, proc.returncode, err, timed_out)


def summarise(samples):
    return {
        'seconds': statistics.median(s.wall for s in samples),
        'rss_mb': statistics.median(s.rss_kb for s in samples) / 1024.0,
        'runs': [round(s.wall, 3) for s in samples],
    }


def interleaved(rounds, commands, **kwargs):
    """Median wall time and RSS of each of ``commands`` ({key: argv}), run in turn ``rounds`` times
    (A B C A B C ...), so that a change of load on the machine hits every command alike."""
    samples = dict((key, []) for key in commands)
    for _round in range(rounds):
        for key, argv in commands.items():
            s = measure(argv, **kwargs)
            if s.rc != 0:
                raise RuntimeError('%s failed (rc %d): %s' % (' '.join(argv), s.rc, s.stderr[-2000:]))
            samples[key].append(s)
    return dict((key, summarise(values)) for key, values in samples.items())


def median_of(n, argv, **kwargs):
    return interleaved(n, {'one': argv}, **kwargs)['one']


# --- namespaces --------------------------------------------------------------------------------

def lab_namespace(tag):
    """A one-host lab from tests/lab/lab.py (``Lab(prefix, hosts=1)``), removed in every exit path.

    Returns a context manager whose value has ``.name`` (the host's namespace).
    """
    from tests.lab.lab import Lab
    return _LabHost(Lab(prefix=PREFIX + tag, hosts=1))


class _LabHost(object):
    """The lab's one host: build the lab, name the host's namespace, tear the lab down on the way out."""

    def __init__(self, lab):
        self.lab = lab
        self.name = None

    def __enter__(self):
        self.lab.up()
        try:
            self.name = self.lab.namespace(self.lab.hosts[0])
            if not os.path.exists(os.path.join('/run/netns', self.name)):
                raise RuntimeError('the lab did not create namespace %s' % self.name)
        except BaseException:
            self.lab.down()
            raise
        return self

    def __exit__(self, *exc):
        self.lab.down()
        return False


def in_ns(ns, argv):
    return ['ip', 'netns', 'exec', ns] + list(argv)


def table_count(ns):
    out = subprocess.run(in_ns(ns, ['conntrack', '-C']), check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def shown_count(stderr):
    m = re.search(r'(\d+) flow entries have been shown', stderr)
    return int(m.group(1)) if m else None


# --- the benchmark -----------------------------------------------------------------------------

def module_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = SRC
    env.pop('PYTHONDONTWRITEBYTECODE', None)
    return env


def write_args(tmpdir, name, options):
    path = os.path.join(tmpdir, name + '.json')
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': options}, handle)
    return path


def check_module(ns, args_path, env, expected, what):
    """One untimed run with the output kept: the module succeeded and matched what conntrack counted."""
    out = subprocess.run(in_ns(ns, [PYTHON, '-m', MODULE, args_path]), env=env, capture_output=True, text=True, check=False)
    try:
        result = json.loads(out.stdout)
    except ValueError:
        raise RuntimeError('%s: no JSON from the module: %s %s' % (what, out.stdout[-1000:], out.stderr[-1000:]))
    if result.get('failed'):
        raise RuntimeError('%s: module failed: %s' % (what, result.get('msg')))
    matched = result.get('matched')
    if matched is None and 'summary' in result:
        matched = result['summary'].get('total')
    if expected is not None and matched != expected:
        log('WARNING %s: module matched %s, conntrack -L showed %s' % (what, matched, expected))
    return matched


def bench_baseline(args, ns, tmpdir):
    """The module's fixed cost on the same table: start-up, imports, counts/stats/sysctls, no entries."""
    path = write_args(tmpdir, 'baseline', {})
    return median_of(args.repeat, in_ns(ns, [PYTHON, '-m', MODULE, path]), env=module_env())


def bench_table(args, ns, tmpdir):
    env = module_env()
    rows = []
    for name, ct_args, options, pr_filter in FILTERS:
        ct_argv = in_ns(ns, ['conntrack', '-L'] + ct_args)
        shown = shown_count(measure(ct_argv).stderr)

        listing_args = write_args(tmpdir, 'listing-%d' % len(rows), dict(options, entries=True, limit=0))
        summary_args = write_args(tmpdir, 'summary-%d' % len(rows), dict(options, summary=True))
        matched = check_module(ns, listing_args, env, shown, 'listing ' + name)
        check_module(ns, summary_args, env, shown, 'summary ' + name)

        log('filter %s: conntrack -L, conntrack_info listing, summary (interleaved, %d rounds)' % (
            name, args.repeat))
        got = interleaved(args.repeat, {
            'conntrack': ct_argv,
            'listing': in_ns(ns, [PYTHON, '-m', MODULE, listing_args]),
            'summary': in_ns(ns, [PYTHON, '-m', MODULE, summary_args]),
        }, env=env)
        ct, listing, summary = got['conntrack'], got['listing'], got['summary']

        pyroute2 = None
        if args.pyroute2_cap > 0:
            log('filter %s: pyroute2 dump_entries (once, cap %ds)' % (name, args.pyroute2_cap))
            s = measure(in_ns(ns, [PYTHON, '-c', PYROUTE2_SCRIPT % pr_filter]), timeout=args.pyroute2_cap)
            if not s.timed_out and s.rc != 0:
                raise RuntimeError('pyroute2 failed: %s' % s.stderr[-2000:])
            pyroute2 = {'seconds': None if s.timed_out else s.wall, 'rss_mb': s.rss_kb / 1024.0,
                        'capped': s.timed_out, 'cap': args.pyroute2_cap, 'runs': [round(s.wall, 3)]}
            m = re.search(r'pyroute2: (\d+) entries', s.stderr)
            pyroute2['entries'] = int(m.group(1)) if m else None
        rows.append({'filter': name, 'conntrack_args': ct_args, 'options': options, 'matched': shown,
                     'module_matched': matched, 'conntrack': ct, 'listing': listing, 'summary': summary,
                     'pyroute2': pyroute2})
    return rows


def bench_adhoc(args, ns, tmpdir, inventory=None, host=None):
    """ansible ad-hoc conntrack_info vs ping on one lab host with a near-empty table."""
    if inventory is None:
        wrapper = os.path.join(tmpdir, 'python-in-ns')
        with open(wrapper, 'w') as handle:
            handle.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (ns, PYTHON))
        os.chmod(wrapper, 0o755)
        inventory = os.path.join(tmpdir, 'inventory.ini')
        host = 'ctbn1'
        with open(inventory, 'w') as handle:
            handle.write('%s ansible_connection=local ansible_python_interpreter=%s\n' % (host, wrapper))
    env = dict(os.environ)
    env['ANSIBLE_CONFIG'] = os.path.join(ROOT, 'ansible.cfg')
    env['ANSIBLE_COLLECTIONS_PATH'] = SRC  # the work tree itself (build/src symlink), same code as installed
    env['ANSIBLE_LOCAL_TEMP'] = os.path.join(tmpdir, 'ansible-local')
    env['ANSIBLE_REMOTE_TEMP'] = os.path.join(tmpdir, 'ansible-remote')
    commands = {}
    for key, module in (('ping', 'ansible.builtin.ping'), ('conntrack_info', 'netfilter.conntrack.conntrack_info')):
        argv = [ANSIBLE, '-i', inventory, host, '-m', module]
        # warm-up (caches, .pyc files), and a check that the module really ran on the lab host
        warm = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if warm.returncode != 0 or 'SUCCESS' not in warm.stdout:
            raise RuntimeError('%s failed: %s %s' % (' '.join(argv), warm.stdout[-2000:], warm.stderr[-2000:]))
        commands[key] = argv
    result = interleaved(args.adhoc_repeat, commands, env=env, cwd=ROOT)
    result['entries'] = table_count(ns)
    return result


def ratio(a, b):
    return None if a is None or b is None or not b else a / b


def verdicts(rows, adhoc):
    by = dict((r['filter'], r) for r in rows)
    none, pp = by['none'], by['tcp dport 443']
    got = {
        'listing_none': ratio(none['listing']['seconds'], none['conntrack']['seconds']),
        'summary_none': ratio(none['summary']['seconds'], none['conntrack']['seconds']),
        'listing_proto_port': ratio(pp['listing']['seconds'], pp['conntrack']['seconds']),
        'summary_rss': max(r['summary']['rss_mb'] for r in rows),
        'adhoc': ratio(adhoc['conntrack_info']['seconds'], adhoc['ping']['seconds']) if adhoc else None,
    }
    out = []
    for key, (desc, limit) in TARGETS.items():
        value = got[key]
        out.append({'target': key, 'description': desc, 'limit': limit, 'value': value,
                    'verdict': 'n/a' if value is None else ('PASS' if value <= limit else 'MISS')})
    return out


def fmt_s(cell):
    if cell is None:
        return 'not run'
    if cell.get('capped'):
        return '> %d (cap)' % cell['cap']
    return '%.2f' % cell['seconds']


def fmt_ratio(cell, base):
    if cell is None:
        return '—'
    if cell.get('capped'):
        return '> %.0f×' % (cell['cap'] / base['seconds'])
    return '%.2f×' % (cell['seconds'] / base['seconds'])


def render(report):
    meta = report['meta']
    lines = [
        '# conntrack_info benchmark',
        '',
        '- date: %s' % meta['date'],
        '- kernel: %s; CPUs: %d; %s; Python %s' % (meta['kernel'], meta['cpus'], meta['conntrack_version'],
                                                   meta['python']),
        '- table: %d entries (%d IPv4, %d IPv6) in namespace `%s`, seed %d' % (
            meta['entries'], meta['ipv4'], meta['ipv6'], meta['namespace'], meta['seed']),
        '- load average (1 min) at start/end: %.2f / %.2f (other work on the machine skews times); '
        'whole run %.0f s' % (meta['loadavg_start'], meta['loadavg_end'], meta['bench_seconds']),
        '- times: median of %d whole-process runs, interleaved (pyroute2: one run, cap %d s); RSS: peak (`/usr/bin/time -f %%M`)' % (
            meta['repeat'], meta['pyroute2_cap']),
        '- conntrack_info runs as `python -m %s args.json` inside `ip netns exec` (the module without '
        'the AnsiballZ wrapper; start-up and imports included), output to /dev/null' % MODULE,
        '- conntrack_info fixed cost on this table (no `entries`, no `summary`: start-up, imports, counts, '
        'stats, sysctls): %.2f s, %.1f MB' % (meta['module_baseline']['seconds'], meta['module_baseline']['rss_mb']),
        '- conntrack-tools 1.4.7 filters the mark in the kernel, proto/port in userspace; conntrack_info '
        'filters both in the kernel (CTA_MARK, CTA_FILTER)',
        '',
        '| filter | matched | reader | seconds | vs `conntrack -L` | peak RSS MB |',
        '|---|---:|---|---:|---:|---:|',
    ]
    for r in report['rows']:
        base = r['conntrack']
        readers = (('`conntrack -L`', 'conntrack'), ('conntrack_info listing', 'listing'),
                   ('conntrack_info summary', 'summary'), ('pyroute2 `dump_entries()` ×2 families', 'pyroute2'))
        for label, key in readers:
            cell = r[key]
            lines.append('| %s | %s | %s | %s | %s | %s |' % (
                r['filter'], r['matched'], label, fmt_s(cell), fmt_ratio(cell, base),
                '—' if cell is None or cell.get('capped') else '%.1f' % cell['rss_mb']))
    adhoc = report.get('adhoc')
    if adhoc:
        lines += [
            '',
            'Ad-hoc on a near-empty table (%d entries), `ansible -i INVENTORY HOST -m MODULE`, median of %d:' % (
                adhoc['entries'], meta['adhoc_repeat']),
            '',
            '| module | seconds | vs ping |',
            '|---|---:|---:|',
            '| `ansible.builtin.ping` | %.2f | 1.00× |' % adhoc['ping']['seconds'],
            '| `netfilter.conntrack.conntrack_info` | %.2f | %.2f× |' % (
                adhoc['conntrack_info']['seconds'], adhoc['conntrack_info']['seconds'] / adhoc['ping']['seconds']),
        ]
    lines += ['', 'Targets (issue 2):', '', '| target | limit | measured | verdict |', '|---|---:|---:|---|']
    for v in report['verdicts']:
        unit = ' MB' if v['target'] == 'summary_rss' else '×'
        lines.append('| %s | ≤ %s%s | %s | %s |' % (
            v['description'], v['limit'], unit, '—' if v['value'] is None else '%.2f%s' % (v['value'], unit),
            v['verdict']))
    return '\n'.join(lines) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--entries', type=int, default=250000)
    parser.add_argument('--seed', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--adhoc-repeat', type=int, default=5)
    parser.add_argument('--pyroute2-cap', type=int, default=300, help='seconds; 0 skips pyroute2')
    parser.add_argument('--no-adhoc', action='store_true')
    parser.add_argument('--out', default=os.path.join(ROOT, 'bench', 'results'), help='directory for info.md/json')
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit('bench_info: needs root (network namespaces)')
    for tool in ('ip', 'conntrack', TIME):
        if not shutil.which(tool):
            sys.exit('bench_info: %s not found' % tool)

    started = time.monotonic()
    version = subprocess.run(['conntrack', '--version'], capture_output=True, text=True, check=False)
    meta = {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'kernel': platform.release(), 'cpus': os.cpu_count(), 'python': platform.python_version(),
        'conntrack_version': (version.stdout or version.stderr).strip(),
        'seed': args.seed, 'repeat': args.repeat, 'adhoc_repeat': args.adhoc_repeat,
        'pyroute2_cap': args.pyroute2_cap, 'loadavg_start': os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix='ctbn-') as tmpdir:
        with global_lock():  # held for as long as the big table exists
            with lab_namespace('t') as lab:
                ns = lab.name
                log('filling %d entries in %s' % (args.entries, ns))
                fill = subprocess.run(in_ns(ns, [PYTHON, os.path.join(ROOT, 'tests', 'lab', 'tables.py'),
                                                 str(args.entries), str(args.seed)]),
                                      capture_output=True, text=True, check=False)
                if fill.returncode != 0:
                    raise SystemExit('filling the table failed: %s' % fill.stderr[-2000:])
                meta['entries'] = table_count(ns)
                if meta['entries'] < args.entries:
                    log('WARNING: the table holds %d entries, %d asked (nf_conntrack_max?): %s' % (
                        meta['entries'], args.entries, fill.stdout.strip()))
                meta['ipv4'] = shown_count(measure(in_ns(ns, ['conntrack', '-L', '-f', 'ipv4'])).stderr) or 0
                meta['ipv6'] = shown_count(measure(in_ns(ns, ['conntrack', '-L', '-f', 'ipv6'])).stderr) or 0
                meta['namespace'] = ns
                log('table: %(entries)d entries (%(ipv4)d IPv4, %(ipv6)d IPv6)' % meta)
                meta['module_baseline'] = bench_baseline(args, ns, tmpdir)
                rows = bench_table(args, ns, tmpdir)
        adhoc = None
        if not args.no_adhoc:
            with lab_namespace('a') as lab:
                subprocess.run(in_ns(lab.name, [PYTHON, os.path.join(ROOT, 'tests', 'lab', 'tables.py'), '20']),
                               check=True, capture_output=True)
                log('ad-hoc: ping vs conntrack_info in %s' % lab.name)
                adhoc = bench_adhoc(args, lab.name, tmpdir)
    meta['bench_seconds'] = round(time.monotonic() - started, 1)
    meta['loadavg_end'] = os.getloadavg()[0]
    report = {'meta': meta, 'rows': rows, 'adhoc': adhoc}
    report['verdicts'] = verdicts(rows, adhoc)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'info.json'), 'w') as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
        handle.write('\n')
    text = render(report)
    with open(os.path.join(args.out, 'info.md'), 'w') as handle:
        handle.write(text)
    sys.stdout.write(text)
    log('done in %.0f s; results in %s' % (meta['bench_seconds'], args.out))


if __name__ == '__main__':
    main()
