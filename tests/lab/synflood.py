"""A bounded, spoofed SYN flood against a lab server, and what it does to the server's conntrack table.

Three lab hosts, each a network namespace (prefix ``ctsf``), joined by a bridge in a fourth
(switch) namespace, documentation addresses only, no default route:

    server    192.0.2.10   a TCP service on a protected port (server speaks first: a banner line,
                           then it echoes lines) behind a stateful nft firewall (its own table
                           ``inet lab``, input hook at priority filter + 10)
    attacker  192.0.2.20   hping3, spoofed sources from 203.0.113.0/24, incrementing source ports
    client    192.0.2.30   >= 200 connection attempts at a fixed rate, 1 s timeout each
                           (connect + read the banner)

The server has a route back to 203.0.113.0/24 via the attacker so its SYN-ACKs leave (without it
the flood's entries sit in SYN_SENT and hide the half-open timeouts); the attacker does not forward
them, so the handshakes never complete.

``FloodLab.phase()`` flushes the server's table and restarts the service (state of an earlier phase
hides failures), samples the server's count/max and stats (/proc/net/stat/nf_conntrack, summed over
CPUs: the same counters as ``conntrack -S``) while the flood and the clients run, and measures how
long the flood's entries take to leave the table. Floods are bounded in count (``-i uN -c COUNT``;
``--flood`` ignores ``-c``) and time (outer ``timeout``), and only one runs at a time on the machine
(an flock).

The global ``nf_conntrack_max`` is lowered only through ``lowered_global_max()``: under the
project's global lock (``globallock.restored_sysctl``, restored in every exit path), and refused
while any other namespace's table is busy.

Command line (root): ``python tests/lab/synflood.py [--max 4096] [--seconds 12]`` runs one
unprotected phase and prints the result as JSON.
"""
import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import globallock  # noqa: E402

PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.path.exists(PYTHON):
    PYTHON = sys.executable

ANSIBLE_PLAYBOOK = os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook')
# tests/conftest.py links the work tree there; SYNFLOOD_COLLECTIONS_PATH overrides (e.g. an installed copy)
COLLECTIONS = os.environ.get('SYNFLOOD_COLLECTIONS_PATH') or os.path.join(ROOT, 'build', 'src')
ROLE_PLAYBOOK = '''- name: Apply synflood_guard to the lab server
  hosts: flood
  gather_facts: false
  roles:
    - role: netfilter.conntrack.synflood_guard
'''

PREFIX = 'ctsf'
SERVER_IP = '192.0.2.10'
ATTACKER_IP = '192.0.2.20'
CLIENT_IP = '192.0.2.30'
LAB_NET = '192.0.2.0/24'
SPOOF_NET = '203.0.113.0/24'
SPOOF_BASE = '203.0.113.'
PORT = 8080
COUNT_PATH = '/proc/sys/net/netfilter/nf_conntrack_count'
MAX_PATH = '/proc/sys/net/netfilter/nf_conntrack_max'
FLOOD_LOCK = '/run/lock/netfilter-conntrack-synflood.lock'
BUSY_THRESHOLD = 1000
STAT_KEYS = ('found', 'new', 'invalid', 'ignore', 'insert', 'insert_failed', 'drop', 'early_drop',
             'search_restart', 'clashres')

# ---------------------------------------------------------------------------------------------
# Scripts run inside the namespaces (with the project's Python, as separate processes).

SERVICE = r'''
import asyncio, sys
port = int(sys.argv[1])
async def handle(reader, writer):
    try:
        writer.write(b"hello from the lab server\n")
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096, reuse_address=True)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''

PROBER = r'''
import asyncio, json, sys, time
host, port, attempts, interval, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
async def attempt(i, results):
    start = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        line = await asyncio.wait_for(reader.readline(), max(0.01, timeout - (time.monotonic() - start)))
        ok = line.startswith(b"hello")
        err = None if ok else "no banner"
    except asyncio.TimeoutError:
        ok, err = False, "timeout"
    except OSError as exc:
        ok, err = False, exc.__class__.__name__
    finally:
        if writer is not None:
            writer.close()
    results.append({"i": i, "t": round(start - t0, 3), "ok": ok, "err": err,
                    "ms": round((time.monotonic() - start) * 1000, 1)})
async def main():
    global t0
    t0 = time.monotonic()
    results, tasks = [], []
    for i in range(attempts):
        tasks.append(asyncio.ensure_future(attempt(i, results)))
        await asyncio.sleep(interval)
    await asyncio.gather(*tasks)
    results.sort(key=lambda r: r["i"])
    print(json.dumps(results))
t0 = 0.0
asyncio.run(main())
'''

SAMPLER = r'''
import json, sys, time
interval = float(sys.argv[1])
def stats():
    with open("/proc/net/stat/nf_conntrack") as fh:
        rows = [line.split() for line in fh]
    head, total = rows[0], {}
    for row in rows[1:]:
        for key, val in zip(head, row):
            total[key] = total.get(key, 0) + int(val, 16)
    return total
while True:
    with open("/proc/sys/net/netfilter/nf_conntrack_count") as fh:
        count = int(fh.read())
    with open("/proc/sys/net/netfilter/nf_conntrack_max") as fh:
        cmax = int(fh.read())
    print(json.dumps({"t": time.monotonic(), "count": count, "max": cmax, "stats": stats()}), flush=True)
    time.sleep(interval)
'''

SESSION = r'''
import socket, sys
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
sock.settimeout(5)
fh = sock.makefile("rwb")
print(fh.readline().decode().strip(), flush=True)
for line in sys.stdin:
    try:
        fh.write(line.encode()); fh.flush()
        print(fh.readline().decode().strip() or "<closed>", flush=True)
    except OSError as exc:
        print("<error %s>" % exc.__class__.__name__, flush=True)
'''

FIREWALL = '''table inet lab {
    chain input {
        type filter hook input priority filter + 10; policy drop;
        iif "lo" accept
        ct state established,related accept
        ct state invalid drop
        meta l4proto { icmp, ipv6-icmp } accept
        tcp dport %(port)d ct state new accept
    }
}
'''


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


class LabError(Exception):
    """The lab could not do what was asked (missing tool, a refused global change)."""


def run(argv, check=True, timeout=60, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout, **kwargs, check=False)
    if check and proc.returncode != 0:
        raise LabError('%s failed (rc=%d): %s' % (' '.join(argv), proc.returncode, proc.stderr.strip()))
    return proc


def ns_count(namespace=None):
    """The conntrack count of a namespace (None: this process's namespace)."""
    if namespace is None:
        with open(COUNT_PATH) as handle:
            return int(handle.read())
    proc = run(['ip', 'netns', 'exec', namespace, 'cat', COUNT_PATH], check=False, timeout=10)
    if proc.returncode != 0:
        return None
    return int(proc.stdout.strip() or 0)


def busy_namespaces(exclude_prefix=PREFIX, threshold=BUSY_THRESHOLD):
    """(name, count) of every namespace this host shows (initial + /run/netns) holding more than ``threshold``."""
    busy = []
    count = ns_count()
    if count > threshold:
        busy.append(('<initial>', count))
    try:
        names = sorted(os.listdir('/run/netns'))
    except OSError:
        names = []
    for name in names:
        if name.startswith(exclude_prefix + '-'):
            continue
        count = ns_count(name)
        if count is not None and count > threshold:
            busy.append((name, count))
    return busy


@contextlib.contextmanager
def lowered_global_max(value, threshold=BUSY_THRESHOLD, own_prefix=PREFIX, wait=0.0):
    """Lower the global nf_conntrack_max to ``value`` for the block; restore it in every exit path.

    Runs under the project's global lock (tests/lab/globallock.py). Refuses (LabError) while any
    other namespace's table holds more than ``threshold`` entries: a global max of a few thousand
    would make their inserts fail. ``wait``: seconds to wait (polling, lock not held) for them to calm down.
    """
    deadline = time.monotonic() + wait
    while True:
        busy = busy_namespaces(own_prefix, threshold)
        if not busy or time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    with globallock.restored_sysctl(MAX_PATH) as original:
        busy = busy_namespaces(own_prefix, threshold)  # again, under the lock
        if busy:
            raise LabError('refusing to lower the global nf_conntrack_max to %d: other tables are busy (%s); '
                           'a global max that low would make their inserts fail'
                           % (value, ', '.join('%s=%d' % item for item in busy)))
        with open(MAX_PATH, 'w') as handle:
            handle.write(str(value))
        yield int(original)


@contextlib.contextmanager
def flood_lock(path=FLOOD_LOCK):
    """One flood at a time on this machine (2 cores, shared with other test runs)."""
    with open(path, 'a') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Sampler(object):
    """Reads count/max/stats inside a namespace every ``interval`` s from a helper process."""

    def __init__(self, lab, namespace, interval=0.2):
        self.samples = []
        self.proc = lab.spawn(namespace, [PYTHON, '-c', SAMPLER, str(interval)])
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.samples.append(json.loads(line))
            except ValueError:
                pass

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.thread.join(5)
        return self.samples


def stats_delta(first, last):
    return dict((key, last['stats'].get(key, 0) - first['stats'].get(key, 0)) for key in STAT_KEYS)


class FloodLab(object):
    """The three-host flood scenario; use as a context manager (always torn down)."""

    def __init__(self, prefix=PREFIX, port=PORT):
        self.prefix = prefix
        self.port = port
        self.switch = prefix + '-sw'
        self.server = prefix + '-srv'
        self.attacker = prefix + '-atk'
        self.client = prefix + '-cli'
        self.hosts = {self.server: SERVER_IP, self.attacker: ATTACKER_IP, self.client: CLIENT_IP}
        self.procs = []
        self.service = None

    # -- life cycle ------------------------------------------------------------------------------
    def __enter__(self):
        # `timeout`/kill send SIGTERM, whose default action skips every finally block: make it an exception
        # so the namespaces, processes and the global max are restored.
        self._sigterm = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            self._sigterm = signal.signal(signal.SIGTERM, _terminate)
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.teardown()
        finally:
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)

    def namespaces(self):
        return [self.switch, self.server, self.attacker, self.client]

    def setup(self):
        for tool in ('ip', 'nft', 'conntrack', 'hping3', 'timeout'):
            if run(['which', tool], check=False).returncode != 0:
                raise LabError('the flood lab needs %s' % tool)
        self.teardown()  # leftovers of a crashed run
        for name in self.namespaces():
            run(['ip', 'netns', 'add', name])
            run(['ip', '-n', name, 'link', 'set', 'lo', 'up'])
        run(['ip', '-n', self.switch, 'link', 'add', self.prefix + 'br0', 'type', 'bridge'])
        run(['ip', '-n', self.switch, 'link', 'set', self.prefix + 'br0', 'up'])
        for index, (name, addr) in enumerate(sorted(self.hosts.items())):
            port = '%sp%d' % (self.prefix, index)
            run(['ip', '-n', self.switch, 'link', 'add', port, 'type', 'veth', 'peer', 'name', self.prefix + '0',
                 'netns', name])
            run(['ip', '-n', self.switch, 'link', 'set', port, 'master', self.prefix + 'br0', 'up'])
            run(['ip', '-n', name, 'addr', 'add', addr + '/24', 'dev', self.prefix + '0'])
            run(['ip', '-n', name, 'link', 'set', self.prefix + '0', 'up'])
        run(['ip', '-n', self.server, 'route', 'add', SPOOF_NET, 'via', ATTACKER_IP])
        run(['ip', 'netns', 'exec', self.server, 'nft', '-f', '-'], input=FIREWALL % {'port': self.port})
        self.start_service()
        self.wait_reachable()

    def teardown(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except OSError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, 9)
                except OSError:
                    pass
                proc.wait(5)
        self.procs = []
        self.service = None
        for name in self.namespaces():
            if os.path.exists(os.path.join('/run/netns', name)):
                run(['ip', 'netns', 'del', name], check=False)

    def spawn(self, namespace, argv, **kwargs):
        kwargs.setdefault('stdout', subprocess.PIPE)
        kwargs.setdefault('stderr', subprocess.DEVNULL)
        proc = subprocess.Popen(['ip', 'netns', 'exec', namespace] + argv, universal_newlines=True,
                                start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def exec_(self, namespace, argv, **kwargs):
        return run(['ip', 'netns', 'exec', namespace] + argv, **kwargs)

    # -- the service -----------------------------------------------------------------------------
    def start_service(self):
        self.stop_service()
        self.service = self.spawn(self.server, [PYTHON, '-c', SERVICE, str(self.port)])
        line = self.service.stdout.readline()
        if 'listening' not in line:
            raise LabError('the lab service did not start')

    def stop_service(self):
        if self.service is not None and self.service.poll() is None:
            os.killpg(self.service.pid, 15)
            self.service.wait(5)
        self.service = None

    def wait_reachable(self, tries=20):
        for _attempt in range(tries):
            result = self.probe(attempts=1, interval=0.0, timeout=1.0)
            if result['ok'] == 1:
                return
            time.sleep(0.2)
        raise LabError('the client cannot reach the lab service at %s:%d' % (SERVER_IP, self.port))

    def open_session(self):
        """An established TCP session client -> server (``session.stdin`` lines are echoed back)."""
        proc = self.spawn(self.client, [PYTHON, '-u', '-c', SESSION, SERVER_IP, str(self.port)],
                          stdin=subprocess.PIPE)
        banner = proc.stdout.readline().strip()
        if not banner.startswith('hello'):
            raise LabError('the session got no banner (%r)' % banner)
        return proc

    @staticmethod
    def session_echo(proc, text):
        proc.stdin.write(text + '\n')
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    def write_inventory(self, directory, group='flood'):
        """An inventory of the server host (``ansible_connection=local`` + a wrapper interpreter in its namespace)."""
        os.makedirs(directory, exist_ok=True)
        wrapper = os.path.join(directory, 'python-%s' % self.server)
        with open(wrapper, 'w') as handle:
            handle.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (self.server, PYTHON))
        os.chmod(wrapper, 0o755)
        inventory = os.path.join(directory, 'inventory.ini')
        with open(inventory, 'w') as handle:
            handle.write('[%s]\nserver ansible_connection=local ansible_python_interpreter=%s netns=%s\n'
                         % (group, wrapper, self.server))
        return inventory

    def apply_role(self, directory, check=True, **variables):
        """Run the synflood_guard role on the server (collection from the work tree); return (rc, output, recap)."""
        link = os.path.join(COLLECTIONS, 'ansible_collections', 'netfilter', 'conntrack')
        if not os.path.exists(link):  # as tests/conftest.py does
            os.makedirs(os.path.dirname(link), exist_ok=True)
            try:
                os.symlink(ROOT, link)
            except FileExistsError:
                pass
        inventory = self.write_inventory(directory)
        playbook = os.path.join(directory, 'synflood_guard.yml')
        with open(playbook, 'w') as handle:
            handle.write(ROLE_PLAYBOOK)
        base = {'synflood_guard_persist': False, 'synflood_guard_ports': [self.port]}
        base.update(variables)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0', ANSIBLE_STDOUT_CALLBACK='default')
        proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', inventory, playbook, '-e', json.dumps(base)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                              cwd=ROOT, timeout=300, check=False)
        match = re.search(r'^server\s+:\s+(.*)$', proc.stdout, re.M)
        recap = dict((key, int(val)) for key, val in re.findall(r'(\w+)=(\d+)', match.group(1))) if match else {}
        if check and proc.returncode != 0:
            raise LabError('the role failed (rc=%d):\n%s' % (proc.returncode, proc.stdout[-6000:]))
        return proc.returncode, proc.stdout, recap

    # -- kernel state ----------------------------------------------------------------------------
    def count(self):
        return ns_count(self.server)

    def flush(self):
        """Empty the server's table and restart the service (no listener left in syncookie mode)."""
        self.stop_service()
        self.exec_(self.server, ['conntrack', '-F'], check=False)
        self.start_service()
        deadline = time.monotonic() + 10
        while self.count() > 0 and time.monotonic() < deadline:
            self.exec_(self.server, ['conntrack', '-F'], check=False)
            time.sleep(0.2)

    # -- traffic ---------------------------------------------------------------------------------
    def probe(self, attempts=240, interval=0.04, timeout=1.0):
        """Client connection attempts (connect + banner, ``timeout`` s each) started every ``interval`` s."""
        bound = attempts * interval + timeout + 30
        proc = self.exec_(self.client, [PYTHON, '-c', PROBER, SERVER_IP, str(self.port), str(attempts),
                                        str(interval), str(timeout)], timeout=bound)
        results = json.loads(proc.stdout)
        ok = sum(1 for item in results if item['ok'])
        errors = {}
        for item in results:
            if not item['ok']:
                errors[item['err']] = errors.get(item['err'], 0) + 1
        return {'attempts': len(results), 'ok': ok, 'success_pct': round(100.0 * ok / max(1, len(results)), 1),
                'errors': errors}

    def start_flood(self, seconds, generators=2, interval_us=40, count_per_source=60000, first_source=1):
        """Start ``generators`` bounded SYN floods; each cycles spoofed sources 203.0.113.N.

        Each hping3 run sends at most ``count_per_source`` SYNs from one source with incrementing source
        ports (1024 upwards), under an outer ``timeout``; the whole flood stops after ``seconds``.
        Returns a handle for ``stop_flood`` (packets sent are counted from hping3's runs).
        """
        deadline = time.monotonic() + seconds
        handle = {'threads': [], 'runs': [], 'stop': threading.Event(), 'seconds': seconds}

        def generator(index):
            source = first_source + index
            while not handle['stop'].is_set():
                left = deadline - time.monotonic()
                if left < 0.2 or source > 254:
                    return
                proc = self.spawn(self.attacker, [
                    'timeout', '-k', '1', '%.1f' % left, 'hping3', '-q', '-S', '-p', str(self.port),
                    '-a', SPOOF_BASE + str(source), '-s', '1024', '-i', 'u%d' % interval_us,
                    '-c', str(count_per_source), SERVER_IP], stdout=subprocess.DEVNULL)
                proc.wait(left + 5)
                handle['runs'].append((SPOOF_BASE + str(source), proc.returncode))
                source += generators

        for index in range(generators):
            thread = threading.Thread(target=generator, args=(index,), daemon=True)
            thread.start()
            handle['threads'].append(thread)
        return handle

    def stop_flood(self, handle):
        handle['stop'].set()
        for thread in handle['threads']:
            thread.join(handle['seconds'] + 10)

    def phase(self, name, flood_seconds=13, generators=2, attempts=240, interval=0.04, timeout=1.0,
              client_delay=1.5, drain_wait=0.0, drain_margin=None, global_max=None, busy_wait=0.0):
        """One measured phase: flush, flood, probe during the flood, sample, optionally wait for the drain.

        ``global_max``: lower the global nf_conntrack_max to this value for the flood (refused when other
        tables are busy) and restore it as soon as the flood ends; the drain is measured afterwards.
        ``drain_wait``: seconds to wait at most for the flood's entries to leave (count back to the
        pre-flood count plus the client probes' own entries, which sit in TIME_WAIT for 120 s).
        """
        if attempts * interval + timeout + client_delay > flood_seconds:
            raise LabError('the flood (%ss) must outlast the client attempts (%s x %ss + %ss)'
                           % (flood_seconds, attempts, interval, timeout))
        self.flush()
        with flood_lock():
            with (lowered_global_max(global_max, wait=busy_wait) if global_max else contextlib.nullcontext()):
                baseline = self.count()
                sampler = Sampler(self, self.server)
                time.sleep(0.5)
                started = time.monotonic()
                flood = self.start_flood(flood_seconds, generators=generators)
                try:
                    time.sleep(client_delay)
                    clients = self.probe(attempts, interval, timeout)
                finally:
                    self.stop_flood(flood)
                flood_end = time.monotonic()
                time.sleep(0.5)
                samples = sampler.stop()
        result = {'phase': name, 'flood_seconds': round(flood_end - started, 1), 'generators': generators,
                  'hping3_runs': len(flood['runs']), 'baseline_count': baseline, 'clients': clients}
        during = [s for s in samples if started <= s['t'] <= flood_end + 0.5]
        if samples:
            peak = max(s['count'] for s in during or samples)
            cmax = max(s['max'] for s in during or samples)
            result.update(peak_count=peak, max=cmax, peak_pct_of_max=round(100.0 * peak / cmax, 2),
                          stats=stats_delta(samples[0], samples[-1]))
            full = [s['t'] for s in during if s['count'] >= cmax * 0.99]
            result['seconds_to_full'] = round(full[0] - started, 2) if full else None
        if drain_wait:
            margin = attempts if drain_margin is None else drain_margin
            target = baseline + margin
            deadline = time.monotonic() + drain_wait
            count = self.count()
            while count > target and time.monotonic() < deadline:
                time.sleep(0.5)
                count = self.count()
            result['drain_target'] = target
            result['seconds_to_baseline'] = (round(time.monotonic() - flood_end, 1) if count <= target else None)
            result['count_at_end'] = count
        return result


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--max', type=int, default=None, help='lower the global max for the flood')
    parser.add_argument("--seconds", type=float, default=13)
    parser.add_argument('--generators', type=int, default=2)
    parser.add_argument('--attempts', type=int, default=240)
    parser.add_argument('--drain', type=float, default=0)
    parser.add_argument('--busy-wait', type=float, default=0)
    args = parser.parse_args(argv)
    with FloodLab() as lab:
        print(json.dumps(lab.phase('unprotected', flood_seconds=args.seconds, generators=args.generators,
                                   attempts=args.attempts, global_max=args.max, drain_wait=args.drain,
                                   busy_wait=args.busy_wait), indent=2))


if __name__ == '__main__':
    main()


# ---------------------------------------------------------------------------------------------
# Long-lived sessions with bounded reads, and a second service on the server (for tests that compare
# a protected port with an unprotected one). Added after the rest; nothing above uses them.

LINE_SESSION = r'''
import socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    sock = socket.create_connection((host, port), timeout=timeout)
except OSError as exc:
    print("0 <connect %s>" % exc.__class__.__name__, flush=True)
    sys.exit(0)
buf = b""
def readline(deadline):
    global buf
    while b"\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    return line.decode(errors="replace").strip()
def answer(want=None):
    # the line that echoes ``want`` (late answers to earlier, timed-out lines are skipped), within ``timeout``
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = readline(deadline)
            if want is None or line == want:
                return line
    except socket.timeout:
        return "<timeout>"
    except EOFError:
        return "<closed>"
    except OSError as exc:
        return "<error %s>" % exc.__class__.__name__
print("%d %s" % (sock.getsockname()[1], answer()), flush=True)
for line in sys.stdin:
    try:
        sock.sendall(line.encode())
    except OSError as exc:
        print("<error %s>" % exc.__class__.__name__, flush=True)
        continue
    print(answer(line.strip()), flush=True)
'''


class LineSession(object):
    """One TCP connection client -> server:port, held by a helper process in the client namespace.

    Every read is bounded: the helper waits at most ``timeout`` s for an answer (then answers
    ``<timeout>``; a late answer to a timed-out line is skipped by the next one, so send distinct lines),
    and this side waits at most ``timeout + 5`` s for the helper.
    ``sport``: the client's source port (how the connection's entry is found in the server's table).
    """

    def __init__(self, lab, port, timeout=3.0, host=SERVER_IP):
        import queue
        self.port = port
        self.timeout = timeout
        self.lines = queue.Queue()
        self.proc = lab.spawn(lab.client, [PYTHON, '-u', '-c', LINE_SESSION, host, str(port), str(timeout)],
                              stdin=subprocess.PIPE)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        first = self._next(timeout + 5)
        parts = first.split(' ', 1)
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].startswith('hello'):
            self.close()
            raise LabError('no session to %s:%d (%r)' % (host, port, first))
        self.sport = int(parts[0])
        self.banner = parts[1]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def _next(self, wait):
        import queue
        try:
            line = self.lines.get(timeout=wait)
        except queue.Empty:
            return '<no answer from the helper>'
        return '<helper gone>' if line is None else line

    def echo(self, text):
        """Send one line; return what came back (the line, or ``<timeout>``, ``<closed>``, ``<error ...>``)."""
        try:
            self.proc.stdin.write(text + '\n')
            self.proc.stdin.flush()
        except (OSError, ValueError):
            return '<helper gone>'
        return self._next(self.timeout + 5)

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def start_extra_service(lab, port, wait=10.0):
    """A second banner + echo service on the server (same program as the lab's), stopped with the lab."""
    import select
    proc = lab.spawn(lab.server, [PYTHON, '-u', '-c', SERVICE, str(port)])
    ready, _w, _x = select.select([proc.stdout], [], [], wait)
    line = proc.stdout.readline() if ready else ''
    if 'listening' not in line:
        raise LabError('the extra service on port %d did not start' % port)
    return proc


def accept_port_any_state(lab, port):
    """Let the lab firewall (``inet lab``) accept TCP to ``port`` in any conntrack state.

    Inserted right before the table's ``ct state invalid drop``, like a host's ``tcp dport 22 accept``:
    packets of a connection whose entry is gone (INVALID under tcp_loose=0) still get in, so only the
    rules of the collection can decide their fate.
    """
    listing = lab.exec_(lab.server, ['nft', '-a', 'list', 'chain', 'inet', 'lab', 'input'], timeout=20).stdout
    match = re.search(r'^\s*ct state invalid drop # handle (\d+)$', listing, re.M)
    if not match:
        raise LabError('no "ct state invalid drop" in the lab firewall:\n' + listing)
    lab.exec_(lab.server, ['nft', 'insert', 'rule', 'inet', 'lab', 'input', 'position', match.group(1),
                           'tcp', 'dport', str(port), 'accept', 'comment', '"lab: any state"'], timeout=20)
