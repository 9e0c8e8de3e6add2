"""Benchmark: saving and restoring a table, conntrack_info/conntrack_entry ``saved`` and ``entries`` vs conntrack-tools.

A table of ``--entries`` (default 100,000) entries (TCP over IPv4 and IPv6 in states, UDP, zones, marks) is
built in namespace ``ctrs-bench-a`` and saved twice: as conntrack_info lists it (a JSON list of entry dicts)
and as ``conntrack -L -o save`` writes it. Each restore then runs into the emptied namespace ``ctrs-bench-b``,
interleaved, median of ``--repeat`` runs, every one checked to leave the whole table (``conntrack -C``):

* ``conntrack -R FILE`` (the ``-o save`` lines; 1.4.7 reads them, though ``--help`` does not say so);
* conntrack_entry ``saved:`` as Ansible runs it: the module with the saved form conntrack_info ``saved: true``
  returned (the kernel's messages in one string), a whole process; and its second run (every entry there);
* conntrack_entry as Ansible runs it: the module file with the arguments file (``ANSIBLE_MODULE_ARGS``),
  a whole process: AnsibleModule's validation of every item, the engine, the result;
* the engine alone: ``validate_entries`` + ``ensure_entries`` in a process that has loaded the list;
* ``conntrack -I`` one process per entry: a sample of ``--sample`` entries (default 5,000), measured, and its
  rate extrapolated to the whole table (said so in the results);
* conntrack_entry again on the restored table (the idempotent second run: every item read, nothing written);
* the floor: ansible-core reading the module's arguments (decode and copy) alone, before any of the collection's
  code runs; no module taking the list as an argument can be faster.

Saving is measured too: conntrack_info ``saved: true`` against ``conntrack -L -o save`` to a file.
Peak RSS of each whole process is measured (wait4, by a small helper that forks it: its ~11 MiB at the fork
are the floor of the figure). Results, ratios to ``conntrack -R``: bench/results/restore.md.
Not a test: nothing asserts on time. Namespaces are removed on every exit path.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
SRC = os.path.join(ROOT, 'build', 'src')
MODULE = os.path.join(ROOT, 'plugins', 'modules', 'conntrack_entry.py')
INFO_MODULE = os.path.join(ROOT, 'plugins', 'modules', 'conntrack_info.py')
NS_A, NS_B = 'ctrs-bench-a', 'ctrs-bench-b'

BUILD = r'''
import sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
from ctfill import create_many
N = int(sys.argv[1])
STATES = ('ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED', 'TIME_WAIT', 'SYN_SENT', 'FIN_WAIT')
def entries():
    for i in range(N):
        a, b = divmod(i, 250)
        v6 = i %% 4 == 3
        tcp = i %% 3 != 2
        src = '2001:db8:%%x::%%x' %% (a %% 65536, b + 1) if v6 else '%%s.%%d' %% (('192.0.2', '198.51.100')[a %% 2], b + 1)
        dst = '2001:db8:ffff::%%x' %% (1 + i %% 7) if v6 else '203.0.113.%%d' %% (1 + i %% 7)
        e = {'family': 'ipv6' if v6 else 'ipv4', 'protonum': 6 if tcp else 17, 'src': src, 'dst': dst,
             'sport': 1024 + a %% 60000, 'dport': 443 if tcp else 53, 'timeout': 3600, 'mark': i %% 3,
             'zone': 7 if i %% 10 == 0 else 0, 'status': ['SEEN_REPLY', 'ASSURED'] if tcp else []}
        if tcp:
            e['state'] = STATES[i %% len(STATES)]
        yield e
with Connection() as conn:
    print(N - create_many(conn, entries()))
''' % (SRC, os.path.join(ROOT, 'tests', 'lab'))

SAVE = r'''
import json, sys
sys.path.insert(0, %r)
from ansible_collections.netfilter.conntrack.plugins.module_utils._cttransport import Connection
with Connection() as conn:
    json.dump(list(conn.dump()), open(sys.argv[1], 'w'))
''' % SRC

ENGINE = r'''
import json, sys, time
sys.path.insert(0, %r)
from ansible_collections.netfilter.conntrack.plugins.module_utils._entrybatch import ensure_entries, validate_entries
items = json.load(open(sys.argv[1]))
start = time.perf_counter()
specs = validate_entries({'entries': items, 'state': 'present'})
checked = time.perf_counter()
result = ensure_entries(specs)
done = time.perf_counter()
print(json.dumps({'validate': checked - start, 'ensure': done - checked, 'created': result['created'],
                  'batches': result.get('batches')}))
''' % SRC


# ansible-core's own reading of the module's arguments (decode + copy), before any code of the collection runs:
# the floor of any module given the list as an argument
ARGS_READ = r'''
import json, sys, time
from ansible.module_utils import basic
with open(sys.argv[1], 'rb') as handle:
    basic._ANSIBLE_ARGS = handle.read()
basic._ANSIBLE_PROFILE = 'legacy'
start = time.perf_counter()
basic._load_params()
print(json.dumps({'seconds': time.perf_counter() - start}))
'''


def sh(argv, **kw):
    return subprocess.run(argv, check=kw.pop('check', True), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)


# Runs the command given and reports its time and peak RSS (os.wait4) on stderr. A process forked from this
# benchmark (hundreds of MiB after loading the listing) would start with this benchmark's RSS as its peak, which
# exec does not reset: the small helper forks the measured process instead.
MEASURE = r'''
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stderr=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
sys.stderr.write('%f %d\n' % (time.perf_counter() - start, usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
'''


def run_rss(argv, env=None):
    """(seconds, peak RSS in MiB, stdout) of a whole process, measured by the MEASURE helper."""
    proc = subprocess.Popen([PYTHON, '-c', MEASURE] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, universal_newlines=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(argv[:8]), proc.returncode, out[-2000:]))
    seconds, peak = err.strip().splitlines()[-1].split()
    return float(seconds), int(peak) / 1024.0, out


def in_ns(ns, *argv):
    return ['ip', 'netns', 'exec', ns] + list(argv)


def count(ns):
    return int(sh(in_ns(ns, 'conntrack', '-C')).stdout.split()[0])


def flush(ns):
    sh(in_ns(ns, 'conntrack', '-F'), check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--entries', type=int, default=100000)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--sample', type=int, default=5000)
    parser.add_argument('--output', default=os.path.join(ROOT, 'bench', 'results', 'restore.md'))
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=SRC)
    work = tempfile.mkdtemp(prefix='ctrs-bench-')
    for ns in (NS_A, NS_B):
        sh(['ip', 'netns', 'del', ns], check=False)
        sh(['ip', 'netns', 'add', ns])
    try:
        made = int(sh(in_ns(NS_A, PYTHON, '-c', BUILD, str(args.entries))).stdout)
        listing = os.path.join(work, 'entries.json')
        sh(in_ns(NS_A, PYTHON, '-c', SAVE, listing))
        saved = os.path.join(work, 'save.txt')
        with open(saved, 'w') as handle:
            handle.write(sh(in_ns(NS_A, 'conntrack', '-L', '-o', 'save')).stdout)
        with open(listing) as handle:
            entries = json.load(handle)
        module_args = os.path.join(work, 'args.json')
        with open(module_args, 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': {'entries': entries, '_ansible_check_mode': False}}, handle)
        del entries
        # the saved form: conntrack_info saved: true, against conntrack -L -o save, in the same namespace
        info_args = os.path.join(work, 'info-args.json')
        with open(info_args, 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': {'saved': True, '_ansible_check_mode': False}}, handle)
        saves = {'conntrack -L -o save': [], 'conntrack_info saved': []}
        save_rss = dict((name, 0.0) for name in saves)
        saved_text = None
        for _round in range(args.repeat):
            for name in saves:
                if name == 'conntrack -L -o save':
                    argv = in_ns(NS_A, 'sh', '-c', 'conntrack -L -o save > %s' % os.path.join(work, 'save-again.txt'))
                else:
                    argv = in_ns(NS_A, PYTHON, INFO_MODULE, info_args)
                seconds, peak, out = run_rss(argv, env)
                saves[name].append(seconds)
                save_rss[name] = max(save_rss[name], peak)
                if name == 'conntrack_info saved':
                    info = json.loads(out)
                    if info['saved_entries'] != made:
                        raise RuntimeError('conntrack_info saved %d entries of %d' % (info['saved_entries'], made))
                    saved_text = info['saved']
        saved_args = os.path.join(work, 'saved-args.json')
        with open(saved_args, 'w') as handle:
            json.dump({'ANSIBLE_MODULE_ARGS': {'saved': saved_text, '_ansible_check_mode': False}}, handle)
        saved_size = len(saved_text)
        del saved_text, info
        batches = saved_batches = None
        runs = {'conntrack -R': [], 'conntrack_entry module': [], 'engine alone': [], 'module, second run': [],
                'saved module': [], 'saved, second run': []}
        rss = dict((name, 0.0) for name in runs)
        engine_parts = []
        for _round in range(args.repeat):
            for name in ('conntrack -R', 'saved module', 'conntrack_entry module', 'engine alone'):
                flush(NS_B)
                if name == 'conntrack -R':
                    argv = in_ns(NS_B, 'conntrack', '-R', saved)
                elif name == 'saved module':
                    argv = in_ns(NS_B, PYTHON, MODULE, saved_args)
                elif name == 'conntrack_entry module':
                    argv = in_ns(NS_B, PYTHON, MODULE, module_args)
                else:
                    argv = in_ns(NS_B, PYTHON, '-c', ENGINE, listing)
                seconds, peak, out = run_rss(argv, env)
                got = count(NS_B)
                if got != made:
                    raise RuntimeError('%s left %d entries of %d' % (name, got, made))
                runs[name].append(seconds)
                rss[name] = max(rss[name], peak)
                if name == 'engine alone':
                    engine_parts.append(json.loads(out))
                elif name == 'conntrack_entry module':
                    batches = json.loads(out)['batches']
                elif name == 'saved module':
                    saved_batches = json.loads(out)['batches']
            # the whole table is there now: the second runs of both forms change nothing
            for name, arguments in (('saved, second run', saved_args), ('module, second run', module_args)):
                seconds, peak, out = run_rss(in_ns(NS_B, PYTHON, MODULE, arguments), env)
                second = json.loads(out)
                if second['changed'] or second['unchanged'] != made:
                    raise RuntimeError('%s changed something: %s' % (name, out[:500]))
                runs[name].append(seconds)
                rss[name] = max(rss[name], peak)
        floor = statistics.median(json.loads(sh([PYTHON, '-c', ARGS_READ, module_args]).stdout)['seconds']
                                  for _round in range(args.repeat))
        saved_floor = statistics.median(json.loads(sh([PYTHON, '-c', ARGS_READ, saved_args]).stdout)['seconds']
                                        for _round in range(args.repeat))
        # conntrack -I one process per entry, on a sample
        flush(NS_B)
        with open(saved) as handle:
            lines = [line.split() for line in handle.read().splitlines() if line.startswith('-A ')][:args.sample]
        start = time.perf_counter()
        for words in lines:
            sh(in_ns(NS_B, 'conntrack', '-I', *words[1:]))
        sample_seconds = time.perf_counter() - start
        per_entry = sample_seconds / len(lines)
        if count(NS_B) != len(lines):
            raise RuntimeError('conntrack -I left %d entries of %d' % (count(NS_B), len(lines)))
    finally:
        for ns in (NS_A, NS_B):
            sh(['ip', 'netns', 'del', ns], check=False)
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)
    med = dict((name, statistics.median(values)) for name, values in runs.items())
    base = med['conntrack -R']
    validate = statistics.median(p['validate'] for p in engine_parts)
    ensure = statistics.median(p['ensure'] for p in engine_parts)
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    rows = [
        ('`conntrack -R` of the `-o save` lines', base, rss['conntrack -R']),
        ('conntrack_entry `saved:` (the module, as Ansible runs it)', med['saved module'], rss['saved module']),
        ('conntrack_entry `saved:` second run (all %d there: nothing changed)' % made, med['saved, second run'],
         rss['saved, second run']),
        ('conntrack_entry `entries:` (the module, as Ansible runs it)', med['conntrack_entry module'],
         rss['conntrack_entry module']),
        ('the engine alone (validate + read + plan + write)', med['engine alone'], rss['engine alone']),
        ('conntrack_entry second run (all %d there: read, nothing written)' % made, med['module, second run'],
         rss['module, second run']),
        ('`conntrack -I` one process per entry (%d measured, extrapolated)' % len(lines), per_entry * made, None),
        ('(floor) ansible-core reading the `entries:` arguments alone, no collection code', floor, None),
        ('(floor) ansible-core reading the `saved:` argument alone, no collection code', saved_floor, None),
    ]
    save_base = statistics.median(saves['conntrack -L -o save'])
    save_rows = [('`conntrack -L -o save` to a file', save_base, save_rss['conntrack -L -o save']),
                 ('conntrack_info `saved: true` (the module, as Ansible runs it)',
                  statistics.median(saves['conntrack_info saved']), save_rss['conntrack_info saved'])]
    batches = batches or {'datagrams': 0, 'acks': 0}
    saved_batches = saved_batches or {'datagrams': 0, 'acks': 0}
    text = ['# Restore benchmark: conntrack_entry `saved:` and `entries:` vs conntrack-tools', '',
            'bench/bench_restore.py, %s, %d entries (TCP in 4 states and UDP, IPv4 and IPv6, zones, marks), '
            'median of %d, whole processes (start-up included), same table restored into an emptied namespace '
            'each time.' % (when, made, args.repeat), '',
            '| restore | seconds | vs `conntrack -R` | peak RSS |', '|---|---:|---:|---:|']
    for label, seconds, peak in rows:
        peak_text = '%.0f MiB' % peak if peak is not None else '-'
        text.append('| %s | %.2f | %.2f× | %s |' % (label, seconds, seconds / base, peak_text))
    text += ['', 'Saving the same table (namespace %s, median of %d, whole processes):' % (NS_A, args.repeat), '',
             '| save | seconds | vs `conntrack -L -o save` | peak RSS |', '|---|---:|---:|---:|']
    for label, seconds, peak in save_rows:
        text.append('| %s | %.2f | %.2f× | %.0f MiB |' % (label, seconds, seconds / save_base, peak))
    text += ['', 'The saved form (conntrack_info `saved`): %d characters for %d entries (the kernel\'s messages, '
             'compressed, base64). Its restore sent %d datagrams with %d ACKs; the second run sent the same and '
             'every entry answered EEXIST.' % (saved_size, made, saved_batches['datagrams'], saved_batches['acks'])]
    text += ['', 'Engine alone, split: validating the %d items %.2f s, reading + planning + writing %.2f s (in-process '
             'times, without the Python start-up and JSON load the whole-process figure includes).' % (made, validate, ensure),
             'Writes: %d datagrams, %d ACKs (one per datagram: the last request of each carries NLM_F_ACK, the others '
             'answer only when refused).' % (batches['datagrams'], batches['acks']),
             '`conntrack -I`: %.2f ms per entry measured on %d entries (%.1f s), extrapolated to %d entries; that is '
             'an extrapolation, not a run of %d processes.' % (per_entry * 1000, len(lines), sample_seconds, made, made),
             'The floor row is what ansible-core spends decoding and copying the %d items before the module\'s own '
             'code starts (in-process time): a module that takes the list as an argument cannot be faster than it.'
             % made,
             'Note: conntrack-tools 1.4.7 `-o save` writes no mark (`-m`): its restore loses the marks, which '
             'conntrack_entry keeps.']
    with open(args.output, 'w') as handle:
        handle.write('\n'.join(text) + '\n')
    print('\n'.join(text))


if __name__ == '__main__':
    main()
