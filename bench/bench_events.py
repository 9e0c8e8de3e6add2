"""Benchmark: watching a new-flow storm with conntrack_info ``events`` against ``conntrack -E``.

A two-host lab (prefix ``ctevb``, tests/integration/ctev_support.py): h2 sends one UDP datagram to each of
``--count`` (default 150,000) distinct ports of h1 as fast as the lab can (bounded by ``--seconds``), h1
tracks them and counts the new flows in an nft counter (the independent count). The same storm is watched
in h1 by one listener at a time, each run interleaved and repeated ``--repeat`` times:

* ``conntrack -E -e NEW`` (default receive buffer), its lines written to a file;
* ``conntrack -E -e NEW -b 16777216`` (a large buffer);
* conntrack_info ``events: {types: [new]}`` (its default buffer), and with all three types.

For each: events received, events lost (nft counter - received), per second of the storm, and the CPU
seconds (user + system, getrusage of the listener process) per million events received. The module's CPU
includes its start-up; its fixed cost (the same listen with no traffic) is measured and taken out too.
Results, with ratios to ``conntrack -E``, go to bench/results/events.md. Not a test: nothing asserts.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))

import ctev_support as cs  # noqa: E402  pylint: disable=wrong-import-position

LARGE = 16777216


def run_listener(lab, argv, seconds, storm):
    """Start ``argv`` inside h1, wait until it is subscribed, run ``storm()``, wait for the listener to end.
    Returns (stdout text, rusage, storm result)."""
    before = cs.subscribed(lab, 'h1')
    out = tempfile.TemporaryFile('w+')
    err = tempfile.TemporaryFile('w+')
    proc = subprocess.Popen(['ip', 'netns', 'exec', lab.namespace('h1')] + argv, stdout=out, stderr=err,
                            env=dict(os.environ, PYTHONPATH=cs.SRC))
    end = time.monotonic() + 60
    while cs.subscribed(lab, 'h1') <= before and time.monotonic() < end:
        time.sleep(0.02)
    started = time.monotonic()
    result = storm() if storm else None
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    wall = time.monotonic() - started
    out.seek(0)
    err.seek(0)
    return out.read(), err.read(), usage, result, wall


def conntrack_e(lab, seconds, buffer_size, storm):
    argv = ['timeout', '-s', 'INT', str(seconds), 'conntrack', '-E', '-e', 'NEW']
    if buffer_size:
        argv += ['-b', str(buffer_size)]
    # ``ip netns exec`` execs timeout, which forks conntrack: wait4 on timeout gives conntrack's rusage too
    # (a waited-for child's time is added to its parent's children time, and timeout waits for it)
    out, err, usage, sent, _wall = run_listener(lab, argv, seconds, storm)
    lines = sum(1 for line in out.splitlines() if '[NEW]' in line)
    return {'received': lines, 'cpu': usage.ru_utime + usage.ru_stime, 'sent': sent,
            'enobufs': 'ENOBUFS' in err or 'No buffer space' in err, 'stderr': err.strip()[-200:]}


def module(lab, seconds, types, storm):
    args = tempfile.NamedTemporaryFile('w', suffix='.json', delete=False)
    json.dump({'ANSIBLE_MODULE_ARGS': {'events': {'seconds': seconds, 'types': types}}}, args)
    args.close()
    try:
        out, err, usage, sent, _wall = run_listener(lab, [cs.PYTHON, cs.MODULE, args.name], seconds, storm)
    finally:
        os.unlink(args.name)
    try:
        events = json.loads(out)['events']
    except (ValueError, KeyError):
        raise SystemExit('conntrack_info failed: %s %s' % (out[-2000:], err[-2000:]))
    return {'received': events['new']['count'], 'cpu': usage.ru_utime + usage.ru_stime, 'sent': sent,
            'overruns': events['overruns'], 'unexplained': events['loss']['unexplained'],
            'received_all': events['received']}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=150000)
    parser.add_argument('--seconds', type=float, default=8.0, help='the storm stops after this long at most')
    parser.add_argument('--repeat', type=int, default=2)
    args = parser.parse_args()
    listen_s = int(args.seconds) + 4
    lab = cs.EventLab(prefix='ctevb')
    rows = dict((name, []) for name in ('conntrack -E', 'conntrack -E -b 16M', 'module new', 'module all'))
    storms = []
    try:
        lab.up()

        def storm():
            started = time.monotonic()
            sent = lab.storm(args.count, args.seconds)
            elapsed = time.monotonic() - started
            storms.append((sent, elapsed))
            return sent, elapsed, lab.counters()['udp_new']

        lab.reset()
        idle = module(lab, 2, ['new'], None)  # the module's fixed cost: start-up and an idle listen
        for _round in range(args.repeat):
            for name, run in (('conntrack -E', lambda: conntrack_e(lab, listen_s, 0, storm)),
                              ('conntrack -E -b 16M', lambda: conntrack_e(lab, listen_s, LARGE, storm)),
                              ('module new', lambda: module(lab, listen_s, ['new'], storm)),
                              ('module all', lambda: module(lab, listen_s, ['new', 'update', 'destroy'], storm))):
                lab.reset()
                time.sleep(0.5)
                row = run()
                sent, elapsed, created = row['sent']
                row.update(sent=sent, storm_s=elapsed, created=created, lost=created - row['received'])
                rows[name].append(row)
                print(name, json.dumps(dict((k, v) for k, v in row.items() if k != 'stderr')), flush=True)
    finally:
        lab.down()
    write_results(args, rows, idle)


def med(values):
    return statistics.median(values)


def write_results(args, rows, idle):
    def per_s(row, key):
        return row[key] / row['storm_s']

    summary = {}
    for name, runs in rows.items():
        fixed = idle['cpu'] if name.startswith('module') else 0.0
        summary[name] = {
            'created': med([r['created'] for r in runs]),
            'rate': med([per_s(r, 'created') for r in runs]),
            'received': med([r['received'] for r in runs]),
            'lost': med([r['lost'] for r in runs]),
            'lost_pct': med([100.0 * r['lost'] / r['created'] for r in runs]),
            'received_s': med([per_s(r, 'received') for r in runs]),
            'lost_s': med([per_s(r, 'lost') for r in runs]),
            'cpu': med([r['cpu'] for r in runs]),
            'cpu_mev': med([r['cpu'] / r['received'] * 1e6 for r in runs]),
            'cpu_mev_work': med([max(r['cpu'] - fixed, 0) / r['received'] * 1e6 for r in runs]),
            'overruns': med([r.get('overruns', 0) for r in runs]) if name.startswith('module') else None,
            'enobufs': any(r.get('enobufs') for r in runs) if not name.startswith('module') else None,
        }
    base = summary['conntrack -E']
    version = subprocess.run(['conntrack', '--version'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, check=False).stdout.strip()
    lines = [
        '# conntrack_info events benchmark',
        '',
        '- date: %s UTC' % datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M'),
        '- kernel: %s; CPUs: %d; %s; load average at the end: %s' % (
            platform.release(), os.cpu_count(), version, ' '.join('%.1f' % x for x in os.getloadavg())),
        '- storm: h2 sends one UDP datagram to each of %d ports of h1 (one new flow each), as fast as one Python '
        'process can, bounded at %.0f s; h1 counts the new flows in an nft counter (the independent count)' % (
            args.count, args.seconds),
        '- one listener at a time in h1, interleaved, median of %d runs each; CPU = user + system seconds of the '
        'listener process (getrusage); the module\'s fixed cost (start-up, an idle 2 s listen) is %.2f s CPU, '
        'taken out in the "work" column' % (args.repeat, idle['cpu']),
        '- conntrack -E: `-e NEW`, lines to a file; module: `events: {types: [new]}` (default buffer %d MiB) '
        'and all three types' % (64),
        '',
        '| listener | flows created | storm rate /s | received | lost | lost % | received /s | lost /s | '
        'CPU s | CPU s / M events | work CPU s / M events | CPU/event vs conntrack -E | overruns / ENOBUFS |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ]
    for name, row in summary.items():
        flag = row['overruns'] if row['overruns'] is not None else ('ENOBUFS' if row['enobufs'] else 'none')
        lines.append('| %s | %d | %.0f | %d | %d | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2fx | %s |' % (
            name, row['created'], row['rate'], row['received'], row['lost'], row['lost_pct'], row['received_s'],
            row['lost_s'], row['cpu'], row['cpu_mev'], row['cpu_mev_work'], row['cpu_mev'] / base['cpu_mev'], flag))
    lines += ['', 'Ratios are per event received; "work" excludes the module\'s fixed start-up cost.', '']
    text = '\n'.join(lines)
    print(text)
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'events.md'), 'w') as handle:
        handle.write(text)
    with open(os.path.join(ROOT, 'bench', 'results', 'events.json'), 'w') as handle:
        json.dump({'summary': summary, 'runs': rows, 'idle': idle}, handle, indent=1, default=str)


if __name__ == '__main__':
    main()
