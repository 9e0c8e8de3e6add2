"""Benchmark: the collection at fleet scale, on a lab of ``--hosts`` namespace hosts (prefix ``ctfb``).

In ONE run, with ``--forks`` (20) and the same inventory, it times against ``ansible all -m ping``:

1. ``ansible all -m ping``                                  (the unit: 1.00)
2. ``ansible all -m netfilter.conntrack.conntrack_info -a summary=true``
3. ``playbooks/audit.yml``
4. ``playbooks/tune.yml --check``  (nat_gateway timeouts)
5. ``playbooks/tune.yml``          (the same: changes every host)
6. ``playbooks/tune.yml`` again    (must change nothing)
7. ``playbooks/harden.yml``
8. ``playbooks/harden.yml`` again  (must change nothing)

and reports per step the wall time, its ratio to the ping, the controller's peak RSS (``wait4`` rusage of the
command: the largest of ansible's own processes), the lines of output per host and the changed counts of the
recap. Steps run with Ansible's default stdout callback; the second runs (6, 8) and one more audit run with the
collection's ``netfilter.conntrack.fleet`` callback, so both line counts are measured.

The lab is torn down in every exit path (finally, SIGTERM, SIGINT). Writes bench/results/fleet.json and
bench/results/fleet.md. Run as root: ``.venv/bin/python bench/bench_fleet.py --hosts 200``. Not a test: the goals
(every playbook <= 3x ping, second runs 0 changed, <= 2 lines per host) are reported as PASS or MISS.
"""
import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from lab import Lab  # noqa: E402

RESULTS = os.path.join(ROOT, 'bench', 'results')
BIN = os.path.join(ROOT, '.venv', 'bin')
TUNE_VARS = '{"tuning_timeouts_profile": "nat_gateway"}'

STEPS = [
    ('ping', 'ansible all -m ping', ['ansible', 'all', '-m', 'ping'], 'default'),
    ('info', 'ansible all -m conntrack_info -a summary=true',
     ['ansible', 'all', '-m', 'netfilter.conntrack.conntrack_info', '-a', 'summary=true'], 'default'),
    ('audit', 'audit.yml', ['ansible-playbook', 'playbooks/audit.yml'], 'default'),
    ('tune_check', 'tune.yml --check', ['ansible-playbook', 'playbooks/tune.yml', '--check', '-e', TUNE_VARS], 'default'),
    ('tune', 'tune.yml', ['ansible-playbook', 'playbooks/tune.yml', '-e', TUNE_VARS], 'default'),
    ('tune_again', 'tune.yml again', ['ansible-playbook', 'playbooks/tune.yml', '-e', TUNE_VARS], 'fleet'),
    ('harden', 'harden.yml', ['ansible-playbook', 'playbooks/harden.yml'], 'default'),
    ('harden_again', 'harden.yml again', ['ansible-playbook', 'playbooks/harden.yml'], 'fleet'),
    ('audit_fleet', 'audit.yml', ['ansible-playbook', 'playbooks/audit.yml'], 'fleet'),
]


def recap(text):
    """(hosts changed, changed tasks, failed hosts) from either callback's recap."""
    rows = re.findall(r'^\S+\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', text, re.M)
    if rows:
        return (sum(1 for c, _u, _f in rows if int(c)), sum(int(c) for c, _u, _f in rows),
                sum(1 for _c, u, f in rows if int(u) or int(f)))
    match = re.search(r'^RECAP (\d+) hosts: (\d+) changed \((\d+) tasks\), (\d+) failed, (\d+) unreachable', text, re.M)
    if match:
        return int(match.group(2)), int(match.group(3)), int(match.group(4)) + int(match.group(5))
    changed = len(re.findall(r'^\S+ \| CHANGED', text, re.M))
    failed = len(re.findall(r'^\S+ \| (FAILED|UNREACHABLE)', text, re.M))
    return changed, changed, failed


def host_lines(text, hosts):
    """The median over ``hosts`` of the output lines that name the host (its task lines, its report row, its recap
    line): what one more host adds to the output, without the banners and summaries printed once per batch."""
    pattern = re.compile(r'(?:^|[\s"\[(])(%s)(?=[\s"\]):,]|$)' % '|'.join(re.escape(h) for h in hosts), re.M)
    counts = dict((host, 0) for host in hosts)
    for line in text.splitlines():
        for host in set(pattern.findall(line)):
            counts[host] += 1
    ordered = sorted(counts.values())
    return ordered[len(ordered) // 2] if ordered else 0


def timed(argv, env):
    """Run ``argv``; return (seconds, peak RSS of the command and its processes in MiB, output text, rc)."""
    started = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                            universal_newlines=True)
    out = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.time() - started, usage.ru_maxrss / 1024.0, out, proc.returncode


def run(args):
    lab = Lab(args.prefix, args.hosts)

    def stop(signum, _frame):
        raise SystemExit('bench_fleet: signal %d, tearing the lab down' % signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rows = []
    try:
        started = time.time()
        lab.up()
        built = time.time() - started
        started = time.time()
        lab.traffic()
        traffic = time.time() - started
        counts = lab.status()
        reached = sum(1 for value in counts.values() if value > 0)
        for key, label, argv, callback in STEPS:
            if args.only and key not in args.only and key != 'ping':
                continue
            env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                       ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'build', 'src'), ANSIBLE_NOCOLOR='1',
                       ANSIBLE_FORCE_COLOR='0', ANSIBLE_FORKS=str(args.forks), ANSIBLE_INVENTORY=lab.inventory_path,
                       ANSIBLE_STDOUT_CALLBACK='default' if callback == 'default' else 'netfilter.conntrack.fleet',
                       ANSIBLE_LOAD_CALLBACK_PLUGINS='1')
            command = [os.path.join(BIN, argv[0])] + argv[1:]
            seconds, rss, out, rc = timed(command, env)
            changed_hosts, changed_tasks, failed = recap(out)
            lines = len(out.splitlines())
            rows.append(dict(key=key, label=label, callback=callback, seconds=round(seconds, 1), rss_mib=round(rss, 1),
                             lines=lines, lines_per_host=round(lines / float(args.hosts), 2), rc=rc,
                             lines_naming_host=host_lines(out, lab.hosts),
                             changed_hosts=changed_hosts, changed_tasks=changed_tasks, failed_hosts=failed))
            print('%-16s %-8s %7.1f s  rss %6.1f MiB  %6d lines (%.2f/host)  changed %d hosts  failed %d  rc %d'
                  % (key, callback, seconds, rss, lines, lines / float(args.hosts), changed_hosts, failed, rc), flush=True)
            if rc != 0:
                with open(os.path.join(RESULTS, 'fleet-%s.log' % key), 'w') as handle:
                    handle.write(out)
    finally:
        lab.down()
    ping = rows[0]['seconds'] if rows else 1.0
    for row in rows:
        row['ratio'] = round(row['seconds'] / ping, 2) if ping else None
    return dict(hosts=args.hosts, forks=args.forks, lab_build_s=round(built, 1), traffic_s=round(traffic, 1),
                hosts_with_entries=reached, rows=rows)


def verdicts(data):
    rows = dict((row['key'], row) for row in data['rows'])
    out = []
    playbooks = [r for k, r in rows.items() if k not in ('ping', 'info')]
    worst = max(playbooks, key=lambda r: r['ratio']) if playbooks else None
    if worst:
        out.append(('every playbook <= 3x ping', worst['ratio'] <= 3.0, 'worst: %s %.2fx' % (worst['label'], worst['ratio'])))
    for key in ('tune_again', 'harden_again'):
        if key in rows:
            out.append(('%s: 0 changed' % rows[key]['label'], rows[key]['changed_tasks'] == 0 and rows[key]['rc'] == 0,
                        '%d changed tasks, rc %d' % (rows[key]['changed_tasks'], rows[key]['rc'])))
    fleet = [r for r in data['rows'] if r['callback'] == 'fleet']
    if fleet:
        most = max(fleet, key=lambda r: r['lines_per_host'])
        out.append(('<= 2 lines per host (fleet callback)', most['lines_per_host'] <= 2.0,
                    'most: %s %.2f' % (most['label'], most['lines_per_host'])))
    default = [r for r in data['rows'] if r['callback'] == 'default' and r['key'] not in ('ping', 'info')]
    if default:
        most = max(default, key=lambda r: r['lines_per_host'])
        out.append(('<= 2 lines per host (default callback)', most['lines_per_host'] <= 2.0,
                    'most: %s %.2f' % (most['label'], most['lines_per_host'])))
        most = max(default, key=lambda r: r.get('lines_naming_host', 0))
        out.append(('<= 2 lines naming each host (default callback)', most.get('lines_naming_host', 0) <= 2,
                    'most: %s %d' % (most['label'], most.get('lines_naming_host', 0))))
    return out


def write(data):
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'fleet.json'), 'w') as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    lines = ['# Fleet benchmark (bench/bench_fleet.py)', '',
             '%s, %s, %d CPUs shared with other work; lab of %d namespace hosts, forks %d; lab built in %.0f s, '
             'traffic %.0f s (%d of %d hosts with entries).'
             % (data['date'], platform.release(), os.cpu_count(), data['hosts'], data['forks'], data['lab_build_s'],
                data['traffic_s'], data['hosts_with_entries'], data['hosts']), '',
             '| step | callback | seconds | x ping | controller peak RSS MiB | lines/host | lines naming a host '
             '| hosts changed | changed tasks | failed | rc |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for row in data['rows']:
        lines.append('| %s | %s | %.1f | %.2f | %.1f | %.2f | %s | %d | %d | %d | %d |' % (
            row['label'], row['callback'], row['seconds'], row['ratio'], row['rss_mib'], row['lines_per_host'],
            row.get('lines_naming_host', '-'), row['changed_hosts'], row['changed_tasks'], row['failed_hosts'], row['rc']))
    lines += ['', '| goal | result | detail |', '|---|---|---|']
    for goal, ok, detail in verdicts(data):
        lines.append('| %s | %s | %s |' % (goal, 'PASS' if ok else 'MISS', detail))
    lines += ['', 'Lines per host: all output lines of the command divided by the hosts (banners, recap and the',
              'summary included). "default" is ansible-core\'s default stdout callback with its default settings',
              '(a line per host per task); "fleet" is `ANSIBLE_STDOUT_CALLBACK=netfilter.conntrack.fleet`.',
              'Lines naming a host: the median over the hosts of the lines that name the host (its task lines,',
              'its report row, its recap line), what one more host adds to the output.', '']
    with open(os.path.join(RESULTS, 'fleet.md'), 'w') as handle:
        handle.write('\n'.join(lines))
    print('\n'.join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hosts', type=int, default=200)
    parser.add_argument('--forks', type=int, default=20)
    parser.add_argument('--prefix', default='ctfb')
    parser.add_argument('--only', nargs='*', help='step keys to run (ping always runs)')
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error('needs root (network namespaces)')
    data = run(args)
    data['date'] = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    write(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
