"""Harness of the property-based tests (namespace prefix ``ctprop``).

* ``PropEnv``: a network namespace (lo with 192.0.2.1/24 and 2001:db8::1/64, no other link, no route),
  a canary nft table, seeded conntrack entries and expectations, a tmp dir for every path option, and
  ``call(module, args)``, which runs a module's ``main()`` in a forked child that entered the namespace
  first, and checks the four properties on the way (see ``Call``).
* ``snapshot`` (taken in the namespace): the nft ruleset, conntrack entries and expectations (without
  countdowns and counters), every file under /proc/sys/net/netfilter, three net.ipv4 knobs, the global
  hashsize, the files of the tmp dir, and the host's persisted-file locations (which a module must
  never touch from here).
* ``module_args(env, module)``: a hypothesis strategy of module arguments derived from the module's
  own argument_spec (captured by calling ``main()`` with a recording AnsibleModule), mostly valid with
  one or two hostile values.

Safety: every generated ``namespace`` is the test's own, None, a name that does not exist under
/run/netns, or a path inside the test's tmp dir; every path option points into the tmp dir. A guard
checks each input before it runs. Nothing runs in the initial namespace but ``ip netns`` itself.
"""
import contextlib
import copy
import ctypes
import ctypes.util
import difflib
import errno
import hashlib
import importlib
import io
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(ROOT, 'build', 'src')
if SRC not in sys.path:
    sys.path.insert(0, SRC)
LAB = os.path.join(ROOT, 'tests', 'lab')
if LAB not in sys.path:
    sys.path.insert(0, LAB)

import globallock  # noqa: E402  pylint: disable=wrong-import-position

COLLECTION = 'ansible_collections.netfilter.conntrack.plugins'
MODULES = ('conntrack_info', 'conntrack_entry', 'conntrack_flush', 'conntrack_sysctl', 'conntrack_helper',
           'conntrack_notrack')
NS_PREFIX = 'ctprop'
NETNS_DIR = '/run/netns'
CLONE_NEWNET = 0x40000000
CALL_TIMEOUT = 30
OWN_TABLE = ('inet', 'netfilter_conntrack')
NFT = shutil.which('nft') or '/usr/sbin/nft'
CONNTRACK = shutil.which('conntrack') or '/usr/sbin/conntrack'

CANARY = '''table inet ctprop_canary {
\tset allow4 {
\t\ttype ipv4_addr
\t\telements = { 198.51.100.1, 198.51.100.2 }
\t}
\tset ports {
\t\ttype inet_service
\t\tflags interval
\t\telements = { 22, 8000-8080 }
\t}
\tchain c_in {
\t\ttype filter hook input priority filter + 5; policy accept;
\t\tip saddr @allow4 tcp dport @ports accept
\t\tmeta mark 0x00000042 accept comment "ctprop canary"
\t}
\tchain c_pre {
\t\ttype filter hook prerouting priority raw + 1; policy accept;
\t\tiifname "lo" ip6 saddr 2001:db8::/32 accept
\t}
\tchain c_plain {
\t\tudp dport 53 jump c_in2
\t}
\tchain c_in2 {
\t\treturn
\t}
}
table ip ctprop_canary4 {
\tchain c_out {
\t\ttype filter hook output priority mangle; policy accept;
\t\tip daddr 203.0.113.0/24 meta mark set 0x00000007
\t}
}
'''
CANARY_TABLES = (('inet', 'ctprop_canary'), ('ip', 'ctprop_canary4'))

# conntrack -I arguments of the seeded entries (long timeouts: the snapshot must be stable)
SEED_ENTRIES = (
    '-s 192.0.2.1 -d 192.0.2.2 -p tcp --sport 40000 --dport 443 --state ESTABLISHED -u SEEN_REPLY,ASSURED',
    '-s 198.51.100.20 -d 192.0.2.1 -p tcp --sport 51000 --dport 443 --state SYN_RECV -u SEEN_REPLY -m 0x2',
    '-s 198.51.100.7 -d 192.0.2.1 -p udp --sport 5353 --dport 53 -m 0x10',
    '-s 192.0.2.1 -d 198.51.100.9 -p icmp --icmp-type 8 --icmp-code 0 --icmp-id 77',
    '-s 192.0.2.1 -d 192.0.2.3 -p sctp --sport 3868 --dport 3868 --state ESTABLISHED --orig-vtag 1 --reply-vtag 2',
    '-s 2001:db8::1 -d 2001:db8::2 -p tcp --sport 40001 --dport 22 --state ESTABLISHED -u SEEN_REPLY -w 7',
    '-s 2001:db8::5 -d 2001:db8::1 -p udp --sport 5353 --dport 53 -m 1 -w 3',
    '-s 2001:db8::1 -d 2001:db8::99 -p icmpv6 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 5',
)
SEED_TIMEOUT = 3600


def _seed_expectations(timeout):
    """Masters with the ftp helper, each with one expectation (what a PASV reply makes), over netlink."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctcodec as codec
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctvocab as vocab
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as wire
    flags = wire.NLM_F_REQUEST | wire.NLM_F_ACK | wire.NLM_F_CREATE | wire.NLM_F_EXCL
    with transport.Connection() as conn:
        for sport, expected in ((41000, 50000), (41001, 50001)):
            master = {'family': 'ipv4', 'protonum': 6, 'src': '192.0.2.1', 'dst': '192.0.2.5', 'sport': sport,
                      'dport': 21, 'timeout': timeout, 'status': ['SEEN_REPLY', 'ASSURED'], 'state': 'ESTABLISHED'}
            attrs = codec.encode_ct_attrs(master) + wire.nla_nested(vocab.CTA_HELP, wire.nla_str(vocab.CTA_HELP_NAME, 'ftp'))
            conn.request(1, wire.IPCTNL_MSG_CT_NEW, flags, vocab.AF_INET, 0, attrs)
            tup = dict((k, master[k]) for k in ('src', 'dst', 'sport', 'dport', 'protonum'))
            exp = codec.encode_tuple(vocab.CTA_EXPECT_MASTER, 'ipv4', tup)
            exp += codec.encode_tuple(vocab.CTA_EXPECT_TUPLE, 'ipv4', {'src': '192.0.2.5', 'dst': '192.0.2.1',
                                                                       'protonum': 6, 'sport': 0, 'dport': expected})
            exp += codec.encode_tuple(vocab.CTA_EXPECT_MASK, 'ipv4', {'src': '255.255.255.255', 'dst': '255.255.255.255',
                                                                      'protonum': 255, 'sport': 0, 'dport': 0xffff})
            exp += wire.nla_be32(vocab.CTA_EXPECT_TIMEOUT, timeout)
            conn.request(2, wire.IPCTNL_MSG_EXP_NEW, flags, vocab.AF_INET, 0, exp)


# tables of ours made once at set-up, so the modules also meet an existing table of theirs
PRELOAD = (
    ('conntrack_helper', {'helper': 'ftp', 'family': 'ipv4'}),
    ('conntrack_notrack', {'rules': [{'proto': 'udp', 'dport': 53}, {'proto': 'tcp', 'dport': 8443, 'synproxy': True}],
                           'drop_invalid': True}),
)

HOST_PATHS = ('/etc/sysctl.d', '/etc/modprobe.d', '/etc/modules-load.d', '/etc/netfilter-conntrack',
              '/etc/systemd/system/netfilter-conntrack.service', '/etc/systemd/system/multi-user.target.wants')
SYSCTL_ROOT = '/proc/sys/net/netfilter'
IPV4_KNOBS = ('/proc/sys/net/ipv4/tcp_syncookies', '/proc/sys/net/ipv4/tcp_timestamps',
              '/proc/sys/net/ipv4/tcp_max_syn_backlog')
HASHSIZE = '/sys/module/nf_conntrack/parameters/hashsize'
VOLATILE_ENTRY_KEYS = ('timeout', 'id', 'use', 'packets', 'bytes', 'reply_packets', 'reply_bytes',
                       'timestamp_start', 'timestamp_stop')
# sections compared for every call; 'ids' and 'timeouts' only between the two ends of one call
# the global knobs (their files in a namespace mirror the host's values, read-only there)
GLOBAL_KNOBS = tuple(os.path.join(SYSCTL_ROOT, 'nf_conntrack_' + k) for k in ('max', 'buckets', 'expect_max'))
SECTIONS = ('ruleset', 'canary', 'conntrack', 'expect', 'decoded', 'sysctl', 'global', 'files', 'host_files')
CALL_SECTIONS = SECTIONS + ('ids', 'timeouts')

_LIBC = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)


class HarnessError(AssertionError):
    """The harness itself could not do its job (not a finding about a module)."""


def sh(*argv, **kw):
    check = kw.pop('check', True)
    return subprocess.run(list(argv), check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=kw.pop('timeout', 60), **kw)


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _LIBC.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


# --- running code in a forked child inside the namespace -----------------------------------------

class ChildRun(object):
    __slots__ = ('rc', 'stdout', 'stderr', 'value', 'timed_out', 'seconds', 'log')

    def __init__(self):
        self.rc = None
        self.stdout = ''
        self.stderr = ''
        self.value = None
        self.timed_out = False
        self.seconds = 0.0
        self.log = []


def _readback(handle):
    handle.flush()
    handle.seek(0)
    return handle.read().decode('utf-8', 'replace')


def fork_in_ns(env, body, timeout=CALL_TIMEOUT, spy=False):
    """Run ``body()`` in a forked child that entered ``env``'s namespace first.

    The child's fds 1 and 2 go to temporary files, its cwd is the tmp work dir. ``body`` returns
    either an int (exit code; stdout is the module output) or, wrapped as ``('value', obj)``, a
    JSON value handed back to the parent. Any exception escaping ``body`` is printed with its
    traceback to the child's stderr (exit code 99). A child still running after ``timeout``
    seconds is killed with its process group.
    """
    run = ChildRun()
    out = tempfile.TemporaryFile(dir=env.io_dir)
    err = tempfile.TemporaryFile(dir=env.io_dir)
    res = tempfile.TemporaryFile(dir=env.io_dir)
    log = tempfile.TemporaryFile(dir=env.io_dir) if spy else None
    start = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 98
        try:
            os.setpgid(0, 0)
            setns(env.ns_path)
            if os.stat('/proc/self/ns/net').st_ino != env.ns_ino:
                os._exit(97)  # not in the test namespace: do nothing at all
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, 'r', closefd=False))
            sys.stdout = io.TextIOWrapper(io.FileIO(1, 'w', closefd=False), encoding='utf-8',
                                          errors='backslashreplace', write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, 'w', closefd=False), encoding='utf-8',
                                          errors='backslashreplace', write_through=True)
            os.chdir(env.work_dir)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if spy:
                _install_spy(log)
            try:
                value = body()
                if isinstance(value, tuple) and value and value[0] == 'value':
                    res.write(json.dumps(value[1]).encode())
                    res.flush()
                    code = 0
                elif isinstance(value, int):
                    code = value
                else:
                    code = 0
            except SystemExit as exc:
                if exc.code is None:
                    code = 0
                elif isinstance(exc.code, int):
                    code = exc.code
                else:
                    sys.stderr.write('%s\n' % (exc.code,))
                    code = 1
            except BaseException:  # pylint: disable=broad-except
                traceback.print_exc()
                code = 99
        except BaseException:  # pylint: disable=broad-except
            try:
                traceback.print_exc()
            except BaseException:  # pylint: disable=broad-except
                pass
            code = 96
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # pylint: disable=broad-except
                pass
            os._exit(code & 0xff if isinstance(code, int) else 95)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    pidfd = os.pidfd_open(pid)
    try:
        ready, _w, _x = select.select([pidfd], [], [], timeout)
        if not ready:
            run.timed_out = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
    # whatever the child left behind in its own process group ends with it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    run.seconds = time.monotonic() - start
    run.rc = os.waitstatus_to_exitcode(status)
    run.stdout = _readback(out)
    run.stderr = _readback(err)
    text = _readback(res)
    if text:
        run.value = json.loads(text)
    if log is not None:
        run.log = [json.loads(line) for line in _readback(log).splitlines() if line.strip()]
        log.close()
    for handle in (out, err, res):
        handle.close()
    return run


def _install_spy(log):
    """Record every command the child runs (argv and stdin text) as JSON lines in ``log``."""
    real_popen_init = subprocess.Popen.__init__
    real_run = subprocess.run

    def note(kind, args, data=None):
        try:
            argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
            if isinstance(data, bytes):
                data = data.decode('utf-8', 'replace')
            log.write((json.dumps({'kind': kind, 'argv': argv, 'input': data}) + '\n').encode())
            log.flush()
        except Exception:  # pylint: disable=broad-except
            pass

    def popen_init(self, args, *a, **kw):
        note('popen', args)
        return real_popen_init(self, args, *a, **kw)

    def run(*a, **kw):
        args = a[0] if a else kw.get('args')
        note('run', args, kw.get('input'))
        return real_run(*a, **kw)  # pylint: disable=subprocess-run-check

    subprocess.Popen.__init__ = popen_init
    subprocess.run = run


# --- the module runner ----------------------------------------------------------------------------

_MODULE_CACHE = {}


def load_module(name):
    if name not in _MODULE_CACHE:
        _MODULE_CACHE[name] = importlib.import_module('%s.modules.%s' % (COLLECTION, name))
    return _MODULE_CACHE[name]


class _Captured(Exception):
    pass


def capture_spec(name):
    """{'argument_spec': ..., 'mutually_exclusive': ..., ...} as the module's main() builds them.

    AnsibleModule.__init__ itself is replaced for the call (however the module reaches the class:
    imported by name, through a runner in module_utils, or a subclass), records and raises.
    """
    from ansible.module_utils import basic
    mod = load_module(name)
    record = {}

    def recorder(self, argument_spec=None, **kw):
        record['argument_spec'] = copy.deepcopy(argument_spec)
        record.update(copy.deepcopy(kw))
        raise _Captured()

    real = basic.AnsibleModule.__init__
    saved = basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE
    basic.AnsibleModule.__init__ = recorder
    # a module runner may read the raw arguments before it builds the AnsibleModule: give it an empty set
    basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': {}}).encode()
    basic._ANSIBLE_PROFILE = 'legacy'
    try:
        mod.main()
    except _Captured:
        pass
    finally:
        basic.AnsibleModule.__init__ = real
        basic._ANSIBLE_ARGS, basic._ANSIBLE_PROFILE = saved
    if 'argument_spec' not in record:
        raise HarnessError('%s.main() did not build an AnsibleModule' % name)
    for option, item_spec in ITEM_SPECS.get(name, {}).items():
        # a list option whose items the module checks itself (ItemOptions): the generators get its item options
        record['argument_spec'][option] = dict(record['argument_spec'][option], options=item_spec())
    return record


def _entry_item_spec():
    from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import item_argspec
    return item_argspec()


# list options declared without ``options:`` whose items the module checks with ItemOptions against this spec
ITEM_SPECS = {'conntrack_entry': {'entries': _entry_item_spec}}


def module_body(name, args, check_mode, diff, tmpdir, patch=None):
    def body():
        from ansible.module_utils import basic
        payload = dict(args)
        payload.update(_ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_tmpdir=tmpdir,
                       _ansible_remote_tmp=tmpdir, _ansible_keep_remote_files=False, _ansible_module_name=name,
                       _ansible_verbosity=0, _ansible_debug=False, _ansible_no_log=False)
        basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': payload}).encode()
        basic._ANSIBLE_PROFILE = 'legacy'
        mod = load_module(name)
        if patch is not None:
            patch(mod)
        mod.main()
        sys.stderr.write('ctprop harness: %s.main() returned without exit_json/fail_json\n' % name)
        return 94
    return body


def parse_output(stdout):
    """The module's result: exactly one JSON object (blank lines around it allowed), else None."""
    text = stdout.strip()
    if not text:
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    if text[end:].strip() or not isinstance(value, dict):
        return None
    return value


# --- snapshots ------------------------------------------------------------------------------------

_ENTRY_DROP = re.compile(r'^(packets|bytes|delta-time|use|timeout)=')


def _norm_conntrack_line(line):
    words = line.split()
    if len(words) > 4 and words[0] in ('ipv4', 'ipv6') and words[4].isdigit():
        del words[4]
    return ' '.join(w for w in words if not _ENTRY_DROP.match(w))


def _norm_expect_line(line):
    words = line.split()
    if words and words[0].isdigit():
        words = words[1:]
    return ' '.join(w for w in words if not _ENTRY_DROP.match(w))


def _read_tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                with open(path) as handle:
                    out[path] = handle.read()
            except (IOError, OSError) as exc:
                out[path] = '<%s>' % errno.errorcode.get(exc.errno, exc.errno)
    return out


def _file_record(path):
    try:
        st_ = os.lstat(path)
    except OSError as exc:
        return '<%s>' % errno.errorcode.get(exc.errno, exc.errno)
    if os.path.islink(path):
        return 'link -> %s' % os.readlink(path)
    mode = oct(st_.st_mode & 0o7777)
    if not os.path.isfile(path):
        return 'special %s %s' % (oct(st_.st_mode), st_.st_ino)
    try:
        with open(path, 'rb') as handle:
            data = handle.read(1 << 20)
    except OSError as exc:
        return '%s <%s>' % (mode, errno.errorcode.get(exc.errno, exc.errno))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        text = 'sha256:' + hashlib.sha256(data).hexdigest()
    return '%s %s' % (mode, text)


def _walk_files(root):
    out = {}
    if not os.path.lexists(root):
        return out
    if not os.path.isdir(root) or os.path.islink(root):
        out[root] = _file_record(root)
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out[dirpath + '/'] = 'dir %s' % oct(os.stat(dirpath).st_mode & 0o7777)
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
            path = os.path.join(dirpath, name)
            out[path] = _file_record(path)
    return out


def _decoded():
    """Entries and expectations by the collection's own decoder, volatile fields split off."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _cttransport as transport
    entries, ids, timeouts = [], {}, {}
    with transport.Connection() as conn:
        for entry in conn.dump():
            stable = dict((k, v) for k, v in entry.items() if k not in VOLATILE_ENTRY_KEYS)
            key = json.dumps(stable, sort_keys=True, default=str)
            entries.append(key)
            ids[key] = entry.get('id')
            timeouts[key] = entry.get('timeout')
        for exp in conn.dump_expect():
            stable = dict((k, v) for k, v in exp.items() if k not in ('timeout', 'id'))
            key = 'expect ' + json.dumps(stable, sort_keys=True, default=str)
            entries.append(key)
            ids[key] = exp.get('id')
            timeouts[key] = exp.get('timeout')
    return sorted(entries), ids, timeouts


def _tools_listing():
    """(entries, expectations) as conntrack -L -o extended / -L expect print them, countdowns dropped."""
    proc = subprocess.run([CONNTRACK, '-L', '-o', 'extended'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    entries = sorted(_norm_conntrack_line(l) for l in proc.stdout.splitlines() if l.strip())
    proc = subprocess.run([CONNTRACK, '-L', 'expect'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    return entries, sorted(_norm_expect_line(l) for l in proc.stdout.splitlines() if l.strip())


def _canary_text(ruleset):
    """The canary tables' blocks, verbatim, from ``nft list ruleset`` text."""
    out = []
    for family, name in CANARY_TABLES:
        head = 'table %s %s {' % (family, name)
        lines = ruleset.split('\n')
        if head not in lines:
            out.append('<missing %s %s>' % (family, name))
            continue
        start = lines.index(head)
        end = start
        while end < len(lines) and lines[end] != '}':
            end += 1
        out.append('\n'.join(lines[start:end + 1]))
    return '\n'.join(out) + '\n'


def snapshot_body(env):
    def body():
        snap = {'taken': time.monotonic()}
        proc = subprocess.run([NFT, 'list', 'ruleset'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        snap['ruleset'] = proc.stdout if proc.returncode == 0 else '<nft rc %d: %s>' % (proc.returncode, proc.stderr)
        snap['canary'] = _canary_text(snap['ruleset'])
        # a dump walks the kernel's whole (all-namespace) hash table: one dump per snapshot, by the
        # collection's decoder (every field: status bits, labels, helper, ids, timeouts), or by
        # conntrack-tools when the decoder cannot be used (checked against each other at set-up)
        snap['conntrack'], snap['expect'] = [], []
        try:
            if env.tools_snapshot:
                raise RuntimeError('conntrack-tools asked for')
            snap['decoded'], snap['ids'], snap['timeouts'] = _decoded()
        except Exception as exc:  # pylint: disable=broad-except
            snap['decoded'], snap['ids'], snap['timeouts'] = ['<decoder: %r>' % (exc,)], {}, {}
            snap['conntrack'], snap['expect'] = _tools_listing()
        sysctl = _read_tree(SYSCTL_ROOT)
        for path in IPV4_KNOBS:
            try:
                with open(path) as handle:
                    sysctl[path] = handle.read()
            except (IOError, OSError) as exc:
                sysctl[path] = '<%s>' % errno.errorcode.get(exc.errno, exc.errno)
        glob = dict((path, sysctl.pop(path)) for path in GLOBAL_KNOBS if path in sysctl)
        glob[HASHSIZE] = _file_record(HASHSIZE)
        snap['sysctl'] = sysctl
        snap['global'] = glob
        snap['files'] = _walk_files(env.work_dir)
        host = {}
        for path in HOST_PATHS:
            host.update(_walk_files(path))
        snap['host_files'] = host
        return ('value', snap)
    return body


def _timeouts_changed(before, after):
    """Entries whose timeout was set: went up (a refresh), or down faster than the clock."""
    old, new = before.get('timeouts', {}), after.get('timeouts', {})
    elapsed = max(0.0, after.get('taken', 0) - before.get('taken', 0))
    return [(key, old[key], new[key]) for key in new
            if key in old and new[key] is not None and old[key] is not None
            and (new[key] > old[key] + 1 or new[key] < old[key] - elapsed - 2)]


def diff_sections(before, after, sections=CALL_SECTIONS):
    """Names of the sections that differ (timeouts: only a change beyond the countdown)."""
    changed = []
    for name in sections:
        if name == 'timeouts':
            if _timeouts_changed(before, after):
                changed.append(name)
        elif before.get(name) != after.get(name):
            changed.append(name)
    return changed


def _lines(value):
    if isinstance(value, str):
        return value.splitlines()
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return ['%s: %s' % (k, v) for k, v in sorted(value.items())]
    return [repr(value)]


def describe_diff(before, after, sections, limit=40):
    out = []
    for name in sections:
        if name == 'timeouts':
            for key, old, new in _timeouts_changed(before, after):
                out.append('timeout set %s -> %s: %s' % (old, new, key[:200]))
            continue
        delta = [l for l in difflib.unified_diff(_lines(before.get(name)), _lines(after.get(name)), name + ' before',
                                                 name + ' after', n=0, lineterm='') if not l.startswith('@@')]
        out.extend(delta)
    if len(out) > limit:
        out = out[:limit] + ['... (%d more lines)' % (len(out) - limit)]
    return '\n'.join(l[:300] for l in out)


# --- restoring the baseline -----------------------------------------------------------------------

def seed_body(env, entries=True, expectations=True):
    def body():
        problems = []
        if entries:
            for spec in SEED_ENTRIES:
                proc = subprocess.run([CONNTRACK, '-I'] + spec.split() + ['-t', str(SEED_TIMEOUT)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                      check=False)
                if proc.returncode != 0:
                    problems.append('conntrack -I %s: %s' % (spec, proc.stderr.strip()))
        if expectations:
            try:
                _seed_expectations(SEED_TIMEOUT)
            except Exception as exc:  # pylint: disable=broad-except
                problems.append('expectations: %r' % (exc,))
        return ('value', problems)
    return body


def restore_body(env, baseline, current):
    def body():
        done = []
        if current.get('ruleset') != baseline['ruleset']:
            text = 'flush ruleset\n' + baseline['ruleset']
            proc = subprocess.run([NFT, '-f', '-'], input=text, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, check=False)
            done.append('ruleset' if proc.returncode == 0 else 'ruleset FAILED: %s' % proc.stderr.strip())
        if any(current.get(k) != baseline[k] for k in ('conntrack', 'expect', 'decoded')):
            for argv in ([CONNTRACK, '-F'], [CONNTRACK, '-F', 'expect']):
                subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            problems = seed_body(env)()[1]
            done.append('entries' + (' FAILED: %s' % problems if problems else ''))
        for path, value in sorted(baseline['sysctl'].items()):
            if current['sysctl'].get(path) != value and not value.startswith('<') and \
                    not path.endswith('nf_conntrack_count'):
                try:
                    with open(path, 'w') as handle:
                        handle.write(value)
                    done.append('sysctl %s' % path)
                except (IOError, OSError) as exc:
                    done.append('sysctl %s FAILED: %s' % (path, exc))
        if current.get('files') != baseline['files']:
            for path in sorted(current['files'], key=len, reverse=True):
                real = path.rstrip('/')
                if path not in baseline['files'] and real.startswith(env.work_dir + os.sep):
                    with contextlib.suppress(FileNotFoundError):
                        if os.path.islink(real) or not os.path.isdir(real):
                            os.unlink(real)
                        else:
                            shutil.rmtree(real)
            for path, record in baseline['files'].items():
                if current['files'].get(path) != record and not path.endswith('/'):
                    mode, _sp, text = record.partition(' ')
                    if mode.startswith('0o') and not text.startswith('<'):
                        with open(path, 'w') as handle:
                            handle.write(text)
                        os.chmod(path, int(mode, 8))
            done.append('files')
        return ('value', done)
    return body


# --- the environment ------------------------------------------------------------------------------

class Stats(object):
    FIELDS = ('inputs', 'succeeded', 'failed', 'check_mode', 'changed', 'tracebacks', 'bad_output',
              'state_changed_on_failure', 'check_mode_changed', 'canary_changed', 'msg_without_option',
              'global_knob_changed', 'timeouts', 'restores', 'findings', 'seconds')

    def __init__(self):
        self.by_module = {}

    def get(self, module):
        return self.by_module.setdefault(module, dict((f, 0) for f in self.FIELDS))

    def lines(self):
        out = []
        total = dict((f, 0) for f in self.FIELDS)
        for module in sorted(self.by_module):
            row = self.by_module[module]
            for f in self.FIELDS:
                total[f] += row[f]
            out.append(self._line(module, row))
        if len(self.by_module) > 1:
            out.append(self._line('total', total))
        return out

    @staticmethod
    def _line(name, row):
        return ('ctprop %-18s inputs=%d ok=%d failed=%d check_mode=%d changed=%d tracebacks=%d bad_output=%d '
                'state_changed_on_failure=%d check_mode_changed=%d canary_changed=%d msg_without_option=%d '
                'global_knob_changed=%d timeouts=%d restores=%d distinct_findings=%d %.1fs' % (
                    name, row['inputs'], row['succeeded'], row['failed'], row['check_mode'], row['changed'],
                    row['tracebacks'], row['bad_output'], row['state_changed_on_failure'], row['check_mode_changed'],
                    row['canary_changed'], row['msg_without_option'], row['global_knob_changed'], row['timeouts'],
                    row['restores'],
                    row['findings'], row['seconds']))


STATS = Stats()
FINDINGS = []  # every distinct finding of the session, in order
_REPORT = {'path': None, 'registered': False}


class _SummaryPlugin(object):
    """Prints the counts at the end of the pytest run and writes them (and the findings) as JSON."""

    def pytest_terminal_summary(self, terminalreporter):
        if not STATS.by_module:
            return
        write_report()
        terminalreporter.section('ctprop property summary')
        for line in STATS.lines():
            terminalreporter.write_line(line)
        terminalreporter.write_line('ctprop summary and findings written to %s' % _REPORT['path'])


def write_report():
    path = _REPORT['path']
    if not path:
        return
    data = {'stats': STATS.by_module, 'findings': [f.to_json() for f in FINDINGS]}
    with open(path, 'w') as handle:
        json.dump(data, handle, indent=1, default=repr)
    with open(os.path.splitext(path)[0] + '.md', 'w') as handle:
        handle.write(findings_markdown())


def register_summary(config, report_dir):
    if not _REPORT['registered']:
        config.pluginmanager.register(_SummaryPlugin(), 'ctprop-summary')
        _REPORT['registered'] = True
    report_dir = os.environ.get('CTPROP_REPORT_DIR') or report_dir
    os.makedirs(report_dir, exist_ok=True)
    _REPORT['path'] = os.path.join(report_dir, 'ctprop-summary.json')


class Finding(object):
    def __init__(self, module, kind, signature, args, check_mode, diff, msg, detail):
        self.module = module
        self.kind = kind
        self.signature = signature
        self.args = args
        self.check_mode = check_mode
        self.diff = diff
        self.msg = msg
        self.detail = detail
        self.count = 1
        self.minimized = False

    def payload(self):
        args = dict(self.args)
        if self.check_mode:
            args['_ansible_check_mode'] = True
        return args

    def to_json(self):
        return dict(module=self.module, kind=self.kind, signature=list(self.signature), count=self.count,
                    args=self.payload(), msg=self.msg, detail=self.detail, minimized=self.minimized)

    def text(self):
        return '[%s] %s (%d inputs): ANSIBLE_MODULE_ARGS=%s\n  msg: %s\n  %s' % (
            self.module, self.kind, self.count, dumps_args(self.payload()), (self.msg or '')[:300],
            (self.detail or '').replace('\n', '\n  ')[:3000])


def dumps_args(args):
    return json.dumps(args, sort_keys=True, ensure_ascii=True)


def findings_markdown():
    out = ['# ctprop findings', '']
    for f in FINDINGS:
        out.append('## %s: %s' % (f.module, f.kind))
        out.append('')
        out.append('- inputs with this signature: %d; signature: `%s`' % (f.count, ' | '.join(map(str, f.signature))))
        out.append('- ANSIBLE_MODULE_ARGS%s:' % (' (minimized)' if f.minimized else ''))
        out.append('')
        out.append('```json\n%s\n```' % dumps_args(f.payload()))
        if f.msg:
            out.append('- msg: `%s`' % f.msg[:500].replace('`', "'"))
        if f.detail:
            out.append('')
            out.append('```\n%s\n```' % f.detail[:4000])
        out.append('')
    return '\n'.join(out) + '\n'


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]|\{[^}]*\}")
_IDENT = re.compile(r"[\w./%-]*[._/][\w./%-]*")
_NUMBER = re.compile(r"[-+]?\d+")


def _norm_msg(msg):
    """A message with its values taken out (quoted text, names with dots or underscores, numbers)."""
    text = _NUMBER.sub('_', _IDENT.sub('X', _QUOTED.sub('_', msg or '')))
    return ' '.join(text.split())[:40]


def _traceback_signature(text):
    """(exception type, innermost collection frame) of the last traceback in ``text``."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', text)
    ours = [(os.path.basename(f), fn) for f, fn in frames if 'netfilter' in f or 'ansible_collections' in f]
    last = ours[-1] if ours else (frames[-1] if frames else ('?', '?'))
    exc = re.findall(r'^(\w[\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\w*)\b', text, re.M)
    return (exc[-1] if exc else 'unknown', '%s:%s' % last)


class Call(object):
    """One module run and what the properties say about it."""

    def __init__(self, module, args, check_mode, diff):
        self.module = module
        self.args = args
        self.check_mode = check_mode
        self.diff = diff
        self.run = None
        self.result = None
        self.before = None
        self.after = None
        self.changed_sections = []
        self.problems = []  # [(kind, signature, detail)]

    @property
    def failed(self):
        return bool(self.result and self.result.get('failed'))

    @property
    def msg(self):
        return (self.result or {}).get('msg') or ''

    @property
    def traceback(self):
        text = (self.run.stdout if self.run else '') + (self.run.stderr if self.run else '')
        return 'Traceback' in text or bool(self.result and 'exception' in self.result)

    def describe(self):
        return '%s args=%s check_mode=%s rc=%s\nresult=%s\nstderr=%s\nproblems=%s' % (
            self.module, dumps_args(self.args), self.check_mode, self.run and self.run.rc,
            json.dumps(self.result, default=repr)[:3000], (self.run.stderr if self.run else '')[-3000:],
            '\n'.join('%s %s\n%s' % p for p in self.problems))


def option_names(spec, prefix=''):
    """Every option and sub-option name of an argument_spec (plain and as dotted/indexed paths)."""
    names = set()
    for name, opts in (spec or {}).items():
        names.add(name)
        names.add(prefix + name)
        for alias in opts.get('aliases') or ():
            names.add(alias)
        if opts.get('options'):
            sub_prefix = prefix + name + ('[0].' if opts.get('type') == 'list' else '.')
            names |= option_names(opts['options'], sub_prefix)
    return names


# dict-typed options whose keys are documented sub-options (not in the argspec as ``options:``)
EXTRA_SUBOPTIONS = {'synproxy_options': ('mss', 'wscale', 'timestamp', 'sack_perm')}


def names_an_option(msg, names):
    for name in names:
        if re.search(r'(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])' % re.escape(name), msg or ''):
            return True
    return False


class PropEnv(object):
    """The namespace, its baseline and the checked module runner."""

    def __init__(self, tag, base_tmp):
        self.name = '%s-%d-%s' % (NS_PREFIX, os.getpid(), tag)
        self.ns_path = os.path.join(NETNS_DIR, self.name)
        self.tmp = tempfile.mkdtemp(prefix='ctprop-%s-' % tag, dir=base_tmp)
        self.work_dir = os.path.join(self.tmp, 'work')
        self.io_dir = os.path.join(self.tmp, 'io')
        self.module_tmp = os.path.join(self.io_dir, 'ansible-tmp')
        self.bind_path = os.path.join(self.work_dir, 'netns-bind')
        self.not_ns_file = os.path.join(self.work_dir, 'not-a-netns')
        self.a_dir = os.path.join(self.work_dir, 'adir')
        self.ns_ino = None
        self.baseline = None
        self.current = None
        self.specs = {}
        self.knobs = []
        self.seed_problems = []
        self.preload_problems = []
        self.bound = False
        self.signatures = {}
        self.tools_snapshot = False
        self.tools_listing = None

    # -- lifecycle
    def up(self):
        assert self.name.startswith(NS_PREFIX)
        os.makedirs(self.work_dir)
        os.makedirs(self.io_dir)
        os.makedirs(self.module_tmp)
        os.makedirs(self.a_dir)
        with open(self.not_ns_file, 'w') as handle:
            handle.write('a regular file, not a namespace\n')
        sh('ip', 'netns', 'add', self.name)
        self.ns_ino = os.stat(self.ns_path).st_ino
        sh('ip', '-n', self.name, 'link', 'set', 'lo', 'up')
        sh('ip', '-n', self.name, 'addr', 'add', '192.0.2.1/24', 'dev', 'lo')
        sh('ip', '-n', self.name, 'addr', 'add', '2001:db8::1/64', 'dev', 'lo', 'nodad')
        links = sh('ip', '-n', self.name, '-o', 'link', 'show').stdout.strip().splitlines()
        routes = sh('ip', '-n', self.name, 'route', 'show', 'default').stdout.strip()
        assert len(links) == 1 and ': lo:' in links[0] and not routes, (links, routes)
        subprocess.run(['ip', 'netns', 'exec', self.name, NFT, '-f', '-'], input=CANARY, universal_newlines=True,
                       check=True, timeout=30)
        # the namespace also as a path inside the tmp dir (the path form of the namespace option)
        with open(self.bind_path, 'w'):
            pass
        if subprocess.run(['mount', '--bind', self.ns_path, self.bind_path], check=False,
                          stderr=subprocess.DEVNULL).returncode == 0:
            self.bound = True
        else:
            os.unlink(self.bind_path)
        for name in MODULES:
            self.specs[name] = capture_spec(name)
        seeded = fork_in_ns(self, seed_body(self))
        self.seed_problems = seeded.value if seeded.value is not None else [
            'seeding did not report (rc %s): %s' % (seeded.rc, seeded.stderr[-2000:])]
        for name, args in PRELOAD:
            call = self.raw_call(name, self.complete_paths(name, args))
            if not call.result or call.result.get('failed'):
                self.preload_problems.append('%s %s: %s' % (name, args, call.describe()))
        self.knobs = self.in_ns(lambda: sorted(os.listdir(SYSCTL_ROOT)))
        self.tools_listing = self.in_ns(_tools_listing)
        self.baseline = self.snapshot()
        if self.baseline['decoded'] and self.baseline['decoded'][0].startswith('<decoder'):
            self.tools_snapshot = True
            self.baseline = self.snapshot()
        self.current = self.baseline
        if '<missing' in self.baseline['canary']:
            raise HarnessError('canary tables missing: %s' % self.baseline['canary'])
        return self

    def down(self):
        try:
            if self.bound:
                subprocess.run(['umount', self.bind_path], check=False, stderr=subprocess.DEVNULL)
        finally:
            sh('ip', 'netns', 'del', self.name, check=False)

    # -- helpers
    def in_ns(self, func):
        run = fork_in_ns(self, lambda: ('value', func()))
        if run.rc != 0:
            raise HarnessError('child in %s failed (%s): %s' % (self.name, run.rc, run.stderr[-2000:]))
        return run.value

    def snapshot(self):
        run = fork_in_ns(self, snapshot_body(self))
        if run.rc != 0 or run.value is None:
            raise HarnessError('snapshot failed (%s): %s' % (run.rc, run.stderr[-2000:]))
        return run.value

    def nft(self, *args):
        return self.in_ns(lambda: _run_text([NFT] + list(args)))

    def conntrack(self, *args):
        return self.in_ns(lambda: _run_text([CONNTRACK] + list(args)))

    def path_options(self, module):
        spec = self.specs[module]['argument_spec']
        return [name for name, opts in spec.items() if is_path_option(name, opts)]

    def complete_paths(self, module, args):
        """Every path option set (into the tmp dir) unless the input already sets it."""
        args = dict(args)
        for name in self.path_options(module):
            args.setdefault(name, os.path.join(self.work_dir, 'etc', name))
        return args

    def raw_call(self, module, args, check_mode=False, diff=True, patch=None, spy=False, timeout=CALL_TIMEOUT):
        assert_safe(self, module, args)
        call = Call(module, args, check_mode, diff)
        call.run = fork_in_ns(self, module_body(module, args, check_mode, diff, self.module_tmp, patch), spy=spy,
                              timeout=timeout)
        call.result = parse_output(call.run.stdout)
        return call

    def restore(self):
        """Back to the baseline (ids and timeouts aside); returns what was restored."""
        current = self.current
        if self.baseline['global'] != current['global']:
            self.baseline['global'] = current['global']
        if not diff_sections(self.baseline, current, SECTIONS):
            return []
        run = fork_in_ns(self, restore_body(self, self.baseline, current))
        done = run.value or ['restore child failed: %s' % run.stderr[-1000:]]
        self.current = self.snapshot()
        if self.baseline['global'] != self.current['global']:
            # global knobs cannot be set back from a namespace: reported by _judge, adopted here
            self.baseline['global'] = self.current['global']
        left = diff_sections(self.baseline, self.current, SECTIONS)
        if left:
            raise HarnessError('could not restore the baseline (%s; done: %s):\n%s'
                               % (left, done, describe_diff(self.baseline, self.current, left)))
        return done

    # -- the checked call
    def call(self, module, args, check_mode=False, diff=True, patch=None, spy=False, restore=True, count=True,
             timeout=CALL_TIMEOUT):
        """Run ``module`` with ``args`` and check the properties. Returns the Call (``problems`` filled).

        ``count=False`` keeps the call out of the session's counts (harness self-tests, minimizing).
        """
        args = self.complete_paths(module, args)
        stats = STATS.get(module) if count else Stats().get(module)
        start = time.monotonic()
        before = self.current
        call = self.raw_call(module, args, check_mode, diff, patch, spy, timeout)
        call.before = before
        call.after = self.current = self.snapshot()
        call.changed_sections = diff_sections(before, call.after)
        self._judge(call)
        stats['inputs'] += 1
        stats['check_mode'] += bool(check_mode)
        stats['failed' if call.failed else 'succeeded'] += 1
        stats['changed'] += bool(call.result and call.result.get('changed'))
        for kind, _sig, _detail in call.problems:
            key = {'traceback': 'tracebacks', 'bad_output': 'bad_output', 'timeout': 'timeouts',
                   'state_changed_on_failure': 'state_changed_on_failure', 'check_mode_changed': 'check_mode_changed',
                   'canary_changed': 'canary_changed', 'msg_without_option': 'msg_without_option',
                   'global_knob_changed': 'global_knob_changed'}.get(kind)
            if key:
                stats[key] += 1
        if restore and diff_sections(self.baseline, self.current, SECTIONS):
            stats['restores'] += 1
            self.restore()
        stats['seconds'] += time.monotonic() - start
        return call

    def _judge(self, call):
        run, result = call.run, call.result
        problems = call.problems
        if run.timed_out:
            problems.append(('timeout', ('timeout',), 'killed after %ds' % CALL_TIMEOUT))
        if call.traceback:
            text = run.stdout + '\n' + run.stderr
            if result and isinstance(result.get('exception'), str):
                text += '\n' + result['exception']
            tail = text[text.rfind('Traceback'):] if 'Traceback' in text else text
            problems.append(('traceback', ('traceback',) + _traceback_signature(tail), tail.strip()[-2500:]))
        if result is None or run.rc not in (0, 1) or bool(result.get('failed')) != (run.rc == 1):
            if not any(p[0] in ('traceback', 'timeout') for p in problems):
                problems.append(('bad_output', ('bad_output', run.rc, result is None),
                                 'rc=%s stdout=%r stderr=%r' % (run.rc, run.stdout[-1500:], run.stderr[-1500:])))
        canary = 'canary' in call.changed_sections
        if canary:
            problems.append(('canary_changed', ('canary_changed',),
                             describe_diff(call.before, call.after, ['canary'])))
        if 'global' in call.changed_sections:
            problems.append(('global_knob_changed', ('global_knob_changed',),
                             'a global conntrack knob changed during the call (no module may change one from a '
                             'namespace; or another process on the host changed it without tests/lab/globallock.py):'
                             '\n' + describe_diff(call.before, call.after, ['global'])))
        real_changes = [s for s in call.changed_sections if s not in ('canary', 'global')]
        if (call.failed or result is None) and real_changes:
            problems.append(('state_changed_on_failure', ('state_changed_on_failure', tuple(real_changes),
                                                          _norm_msg(call.msg)),
                             describe_diff(call.before, call.after, real_changes)))
        elif call.check_mode and real_changes:
            problems.append(('check_mode_changed', ('check_mode_changed', tuple(real_changes)),
                             describe_diff(call.before, call.after, real_changes)))
        if call.failed:
            spec = self.specs[call.module]['argument_spec']
            names = option_names(spec)
            for subs in EXTRA_SUBOPTIONS.values():
                names |= set(subs)
            if not names_an_option(call.msg, names):
                problems.append(('msg_without_option', ('msg_without_option', _norm_msg(call.msg)), call.msg))

    # -- findings
    def record(self, call):
        """Add the call's problems to the session's distinct findings; returns the new ones."""
        new = []
        for kind, signature, detail in call.problems:
            key = (call.module,) + tuple(signature)
            found = self.signatures.get(key)
            if found is None:
                found = Finding(call.module, kind, tuple(signature), call.args, call.check_mode, call.diff, call.msg,
                                detail)
                self.signatures[key] = found
                FINDINGS.append(found)
                STATS.get(call.module)['findings'] += 1
                new.append(found)
            else:
                found.count += 1
                if len(dumps_args(call.args)) < len(dumps_args(found.args)):
                    found.args, found.check_mode, found.msg, found.detail = call.args, call.check_mode, call.msg, detail
        return new

    def reproduces(self, finding, args):
        call = self.call(finding.module, args, check_mode=finding.check_mode, diff=finding.diff, count=False)
        for kind, signature, detail in call.problems:
            if tuple(signature) == finding.signature:
                return call, detail
        return None, None

    def minimize(self, finding, budget=40):
        """Drop options (and list items, sub-options) while the same signature still shows."""
        args = copy.deepcopy(finding.args)
        paths = self.path_options(finding.module)
        required = [n for n, o in self.specs[finding.module]['argument_spec'].items() if o.get('required')]
        tries = 0

        def attempt(candidate):
            nonlocal tries, args
            tries += 1
            call, detail = self.reproduces(finding, candidate)
            if call is not None:
                args = candidate
                finding.msg, finding.detail = call.msg, detail
                return True
            return False

        defaults = dict((k, os.path.join(self.work_dir, 'etc', k)) for k in paths)
        if any(args.get(k) != v for k, v in defaults.items()):
            attempt(dict(args, **defaults))
        progress = True
        while progress and tries < budget:
            progress = False
            for key in list(args):
                if tries >= budget:
                    break
                if key in paths or key in required:
                    continue
                candidate = dict(args)
                del candidate[key]
                if attempt(candidate):
                    progress = True
            for key, value in list(args.items()):
                if tries >= budget:
                    break
                if isinstance(value, list) and len(value) > 1:
                    for item in value:
                        candidate = dict(args, **{key: [item]})
                        if tries < budget and attempt(candidate):
                            progress = True
                            break
                value = args.get(key)
                if isinstance(value, dict) and len(value) > 1:
                    for sub in list(value):
                        item = dict(args[key])
                        del item[sub]
                        if tries < budget and attempt(dict(args, **{key: item})):
                            progress = True
                value = args.get(key)
                if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
                    for sub in list(value[0]):
                        item = dict(args[key][0])
                        del item[sub]
                        if tries < budget and attempt(dict(args, **{key: [item]})):
                            progress = True
        # the path options are always set by the harness: show them only when they matter
        finding.args = dict((k, v) for k, v in args.items()
                            if k not in paths or v != os.path.join(self.work_dir, 'etc', k))
        finding.minimized = True
        return finding


def _run_text(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    return [proc.returncode, proc.stdout, proc.stderr]


def _run_text_input(argv, text):
    proc = subprocess.run(argv, input=text, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          check=False)
    return [proc.returncode, proc.stdout, proc.stderr]


# --- safety ---------------------------------------------------------------------------------------

PATHY = re.compile(r'(^|_)(file|dir|path|directory)s?$')


def is_path_option(name, opts):
    return opts.get('type') == 'path' or bool(PATHY.search(name))


def _inside(env, text):
    """True when ``text`` resolves into the tmp work dir (an unresolvable path is not inside)."""
    try:
        real = os.path.realpath(text)
    except (OSError, ValueError):
        return False
    return real == env.work_dir or real.startswith(env.work_dir + os.sep)


def _safe_path(env, value):
    text = str(value)
    if '\x00' in text:
        return True  # no system call takes it
    if text.startswith('~') or '$' in text:
        return False  # type=path expands these
    if '/' not in text:
        return True  # relative to the child's cwd, the tmp work dir
    return _inside(env, text)


def namespace_is_safe(env, value):
    if value is None or value == '' or value == env.name:
        return True
    if not isinstance(value, str):
        return False
    if '\x00' in value:
        # a C string stops at the NUL: what is before it must be safe as well
        head = value.split('\x00', 1)[0]
        return head == '' or namespace_is_safe(env, head) or head == '/tmp/x' and not os.path.lexists(head)
    if '/' not in value:
        return value not in ('.', '..') and not os.path.lexists(os.path.join(NETNS_DIR, value))
    # a path: only inside the tmp work dir (where the one namespace file is the test's own, bind-mounted)
    return _inside(env, value)


def assert_safe(env, module, args):
    """Refuse to run an input that could act outside the test namespace or its tmp dir."""
    if not namespace_is_safe(env, args.get('namespace')):
        raise HarnessError('unsafe namespace value generated: %r' % (args.get('namespace'),))
    spec = env.specs[module]['argument_spec']
    for name, opts in spec.items():
        if is_path_option(name, opts):
            if name not in args or args[name] is None:
                raise HarnessError('path option %s not pointed into the tmp dir' % name)
            if not _safe_path(env, args[name]):
                raise HarnessError('unsafe path generated for %s: %r' % (name, args[name]))
    for name, value in args.items():
        if name not in spec and PATHY.search(name) and value is not None and not _safe_path(env, value):
            raise HarnessError('unsafe path generated for unknown option %s: %r' % (name, value))


@contextlib.contextmanager
def prop_env(tag, base_tmp):
    """A PropEnv, up, always removed (namespace, bind mount)."""
    env = PropEnv(tag, base_tmp)
    # the snapshot compares the global knobs too: hold the project's lock on them (tests/lab/globallock.py)
    with globallock.global_lock():
        try:
            env.up()
            yield env
        finally:
            env.down()


# --- strategies -----------------------------------------------------------------------------------

HOSTILE_TEXT = [
    '', ' ', '\t', '\x00', 'a\x00b', '\n', 'x\n', 'eth0\n', '"', "'", '\\', ';', '$(id)', '`id`', '%', '%s%n%x',
    '{}', '[]', '²', '①', '٣', '³²¹', '１２', 'x' * 5000, '9' * 400, ' 7 ', 'fe80::1%x;flush ruleset', 'fe80::1%x',
    'fe80::1%lo', 'é' * 15, 'ä' * 16, '\u202e', '\ufeff', 'Ⅻ', '\U0001f642', 'None', 'null', 'true', 'yes', 'maybe',
    '-1', '0x', '1e3', 'inf', 'nan', '0b101', '1_000', '+5', '\u22125', '٣٣', '\x7f', '\x1b[31m', 'a b', '*', 'eth*',
    '--help', '-F', '}', '{ flush ruleset }', 'a"; flush ruleset; "', '#', '\r', 'lo\x00', '0' * 64,
]
SLASH_TEXT = ['192.0.2.0/33', '::/129', '1/2', '192.0.2.1/0', '192.0.2.1/255.0.255.0']
HOSTILE_NUM = [
    -1, -65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 63, 2 ** 64, 10 ** 100, 1460.7, 0.5, -0.0, 1e308,
    float('inf'), float('-inf'), float('nan'), True, False, '²', '①', '٣', '1e3', '0x10', ' 7 ', '', '12abc',
    '99999999999999999999', None, [], {}, [1], '-0', '0o17', '1.0', 65536, 256, 4294967296,
]
HOSTILE_BOOL = ['false', 'true', 'yes', 'no', 'maybe', '', 'on', 'off', 'True', '1', '0', 2, -1, 0.5, float('nan'),
                [], {}, None, '٣', 'y', 'n']
HOSTILE_LIST = [[], [None], [''], ['\x00'], [[]], [{}], [1.5], [float('inf')], 'a,b', 'x', 5, {'a': 1},
                ['x'] * 300, [[1, 2]], [True], ['²'], [2 ** 64]]
HOSTILE_DICT = [{}, [], 'x', 5, 'a=1', {'': 1}, {'\x00': 1}, {'a': {'b': [{}]}}, {'x' * 300: 1}, None, True,
                {'mss': float('inf')}, [{}]]

ADDR4 = ['192.0.2.1', '192.0.2.2', '198.51.100.7', '198.51.100.20', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.5',
         '0.0.0.0/0', '192.0.2.0/255.255.255.0', '192.0.2.1/32', ' 192.0.2.1 ']
ADDR6 = ['2001:db8::1', '2001:db8::2', '2001:db8::5', '2001:db8::/32', '::/0', 'fe80::1', '::1', '2001:DB8::1',
         '2001:0db8:0000:0000:0000:0000:0000:0001', '::ffff:192.0.2.1']
PROTO_NAMES = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'dccp', 'udplite', 'gre', 'igmp', '6', '17', '1', '58', 'TCP',
               'ipv6-icmp', 'icmp6', 'udp-lite', 'esp', 'ah', '0', '255', '256']
PORTS = [0, 1, 22, 53, 80, 443, 3868, 5353, 40000, 51000, 65535]
PORT_FORMS = PORTS + ['443', '80-90', '1000-1000', [80, 443], ['53', '5353'], '0-65535', [22, '8000-8080']]
MARKS = [0, 1, 2, 16, '0x10', '0xff', 4294967295, '0xffffffff', '16', '0X2', 0x42]
ZONES = [0, 3, 7, 65535]
STATES = ['ESTABLISHED', 'SYN_RECV', 'SYN_SENT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'FIN_WAIT', 'LAST_ACK',
          'established', 'syn-recv', 'NONE', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'SHUTDOWN_SENT', 'OPEN', 'REQUEST',
          'RESPOND', 'PARTOPEN', 'CLOSEREQ', 'TIMEWAIT', 'LISTEN', 'IGNORE', 'RETRANS', 'UNACK']
STATUS = ['SEEN_REPLY', 'ASSURED', 'UNREPLIED', 'CONFIRMED', 'FIXED_TIMEOUT', 'SRC_NAT', 'DST_NAT', 'SEQ_ADJUST',
          'DYING', 'EXPECTED', 'assured', 'OFFLOAD', 'HW_OFFLOAD', 'NAT_DONE', 'TEMPLATE', 'UNTRACKED']
TIMEOUTS = [1, 30, 60, 120, 3600, 86400, 432000]
LABELS = [[0], [1, 2], [127], ['0x3'], [5, 5], ['1']]
IFACES = ['lo', 'eth0', 'veth0', 'br-lan', 'wg0', 'a' * 15, 'eth0.100', 'en_p1s0', 'x']


def _saved_values():
    """(good, bad) saved tables for conntrack_entry ``saved``: small valid ones (created from entries as
    conntrack_entry encodes them), and the same changed: cut, a bad checksum, another version, a message
    with an attribute a saved entry does not hold or a family other than IPv4/IPv6 under a good checksum."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctsaved as saved
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctwrite as ctw
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _nlwire as nlw
    from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import af_of
    from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import EntrySpec

    items = [dict(proto='udp', src='192.0.2.50', dst='198.51.100.50', sport=5000, dport=53, timeout=120),
             dict(proto='tcp', src='2001:db8::50', dst='2001:db8::51', sport=6000, dport=443,
                  tcp_state='ESTABLISHED', timeout=300, mark=3, zone=4),
             dict(proto='icmp', src='192.0.2.51', dst='203.0.113.51', icmp_type=8, icmp_code=0, icmp_id=9,
                  timeout=30)]
    messages = []
    for item in items:
        entry = EntrySpec.from_params(item, item=True).creation()
        messages.append(nlw.nfnl_message(1, nlw.IPCTNL_MSG_CT_NEW, 0, 0, af_of(entry['family']),
                                         attrs=ctw.create_attrs(entry)))
    good = [saved.encode(messages[0], 1), saved.encode(b''.join(messages), 3), saved.encode(b'', 0)]
    whole = good[1]
    bad = [whole[:len(whole) // 2], whole.replace('NFCT-SAVED 1', 'NFCT-SAVED 2'), whole + 'x',
           whole[:whole.index('\n') - 2] + 'ff' + whole[whole.index('\n'):], 'NFCT-SAVED 1 1 99999999999 ' + '0' * 64,
           saved.encode(nlw.nfnl_message(1, nlw.IPCTNL_MSG_CT_NEW, 0, 0, 2, attrs=ctw.create_attrs(
               EntrySpec.from_params(items[0], item=True).creation()) + nlw.nla_be32(12, 1)), 1),
           saved.encode(messages[0][:16] + bytes([7]) + messages[0][17:], 1),
           saved.encode(messages[0][:-4], 1), saved.encode(b''.join(messages), 2), '', 'x' * 5000]
    return good, bad


SAVED_GOOD, SAVED_BAD = _saved_values()

HELPER_NAMES = ['ftp', 'tftp', 'sip', 'irc', 'h323', 'h323-q931', 'h323-ras', 'pptp', 'amanda', 'sane', 'snmp',
                'netbios-ns', 'FTP', 'q.931', 'ras', 'netbios_ns']
QUERIES = [
    'count', 'max', 'usage_percent', 'stats.drop', 'stats', 'entries[?dport==`443`].src', 'summary.top_dports',
    'keys(@)', 'length(entries)', 'sort_by(entries, &dport)[0]', 'max_by(entries, &sport)',
    "entries[?state=='ESTABLISHED'] | length(@)", 'to_string(@)', 'merge(kernel, stats)', 'sysctls.*', '*',
    'expectations[].helper', 'entries[*].[src, dst]', '{c: count, m: max}', 'kernel.release', '@', 'backend',
    'sort(@)', 'abs(backend)', 'sum(sysctls)', 'length(count)', 'avg(entries)', 'not_a_function(@)', 'entries[',
    '', ' ', '`', '@@', "entries[?src=='\x00']", 'to_number(backend)', 'min(entries)', 'join(`,`, entries)',
    'reverse(count)', 'starts_with(backend, `1`)', 'map(&abs(@), entries)', 'sort_by(stats_per_cpu, &cpu)',
    'sort_by(@, &x)', 'max_by(entries, &src)', 'ceil(kernel)', 'contains(count, `1`)', 'type(@)', 'values(@)',
    'entries[0:10:0]', 'entries[::-1]', 'not_null(a, b)', '`{"a": ' * 30 + '1' + '}`' * 30,
    '(' * 2000 + 'count' + ')' * 2000, '[' * 5000, '!' * 3000 + 'count', 'count' + '.count' * 3000,
    'abs(' * 600 + 'count' + ')' * 600, '&' * 3000, '{a:' * 1500 + 'count' + '}' * 1500, 'a || ' * 2000 + 'b',
    '[[' * 1500 + ']]' * 1500, 'x' * 50000,
]


def choice(values):
    return st.sampled_from(values)


QUERY_ATOMS = st.sampled_from(['count', 'max', 'entries', 'stats', 'summary', 'sysctls', 'kernel', 'backend', '@',
                               'entries[0]', '`1`', "'x'", '`"s"`', 'stats_per_cpu'])
QUERY_FUNCS = st.sampled_from(['abs', 'sort', 'length', 'keys', 'values', 'to_string', 'to_number', 'max', 'min', 'sum',
                               'avg', 'reverse', 'type', 'not_null', 'floor', 'ceil', 'to_array'])


def _query_extend(inner):
    """One more level of a JMESPath expression around ``inner`` (st.recursive's extend)."""
    return st.one_of(
        st.builds(lambda f, a: '%s(%s)' % (f, a), QUERY_FUNCS, inner),
        st.builds(lambda a, b: '%s.%s' % (a, b), inner, QUERY_ATOMS.filter(lambda s: s[0].isalpha())),
        st.builds(lambda a, b: '%s | %s' % (a, b), inner, inner),
        st.builds(lambda a: '%s[]' % a, inner),
        st.builds(lambda a, b: '%s || %s' % (a, b), inner, inner),
        st.builds(lambda a: '[%s]' % a, inner),
        st.builds(lambda a: '(%s)' % a, inner),
    )


def query_strategy():
    return st.one_of(choice(QUERIES), st.recursive(QUERY_ATOMS, _query_extend, max_leaves=6), st.text(max_size=12))


def text_strategy():
    return st.one_of(choice(HOSTILE_TEXT), choice(SLASH_TEXT), st.text(max_size=20),
                     st.text(alphabet=st.characters(categories=['Nd', 'No', 'Nl']), min_size=1, max_size=4))


def number_strategy():
    return st.one_of(choice(HOSTILE_NUM), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.text(alphabet=st.characters(categories=['Nd', 'No']), min_size=1, max_size=3))


def hostile_any():
    return st.one_of(text_strategy(), number_strategy(), choice(HOSTILE_BOOL), choice(HOSTILE_LIST),
                     choice(HOSTILE_DICT))


class ArgGen(object):
    """Draws module arguments from the module's argument_spec; ``draw`` is hypothesis' draw."""

    def __init__(self, env, module, draw):
        self.env = env
        self.module = module
        self.draw = draw
        self.record = env.specs[module]
        self.spec = self.record['argument_spec']
        # a plain PRNG seeded by one draw: hypothesis' own draws lean towards their smallest values
        self.seed = draw(st.integers(0, 2 ** 64 - 1))
        self.rnd = random.Random(self.seed)
        self.knob_names = self._knob_names()

    def _knob_names(self):
        shorts = [k[len('nf_conntrack_'):] for k in self.env.knobs if k.startswith('nf_conntrack_')]
        names = list(shorts)
        names += ['nf_conntrack_' + s for s in shorts[:8]] + ['net.netfilter.nf_conntrack_' + s for s in shorts[:8]]
        names += ['max', 'buckets', 'hashsize', 'expect_max', 'count', 'net.nf_conntrack_max', 'conntrack_max',
                  'net.ipv4.tcp_syncookies', 'tcp_syncookies', 'tcp_timestamps', 'tcp_max_syn_backlog',
                  'net.ipv4.tcp_timestamps', 'nf_conntrack_tcp_timeout_established', '/proc/sys/net/netfilter/nf_conntrack_tcp_loose',
                  'net/netfilter/nf_conntrack_udp_timeout', 'no_such_knob', 'tcp_timeout_nope']
        return names

    def p(self, probability):
        """True with this probability (hypothesis' own draws lean towards their smallest values)."""
        return self.rnd.random() < probability

    # -- values
    def knob_value(self, name):
        text = str(name)
        if 'timeout' in text:
            return self.draw(st.one_of(choice(TIMEOUTS + [0, 2147483, 2147484]),
                                       choice(['30s', '5m', '12h', '5d', '1w', '1h30m', '90', ' 10 s', '5x', '1.5h',
                                               '10sec', '2 days']), st.integers(0, 3000000)))
        if any(word in text for word in ('loose', 'acct', 'checksum', 'timestamp', 'liberal', 'helper', 'ignore')):
            return self.draw(choice([0, 1, True, False, 'true', 'false', 'yes', 'no', 'on', 'off', '1', '0', 2]))
        if 'syncookies' in text or 'events' in text:
            return self.draw(choice([0, 1, 2, 3, '1']))
        if 'backlog' in text or 'max' in text or 'buckets' in text or 'hashsize' in text:
            return self.draw(choice([1, 128, 1024, 4096, 65536, 262144, 0, 2147483647, 2147483648]))
        if 'thresh' in text:
            return self.draw(choice([0, 262144, 4194304, 4194304 * 2, 2 ** 63 - 1]))
        if 'log_invalid' in text:
            return self.draw(choice([0, 6, 17, 255, 256]))
        return self.draw(st.one_of(st.integers(-5, 70000), choice(['1', '30s'])))

    def good(self, path, name, opts, parent=None):
        """A valid-looking value for option ``name``."""
        draw = self.draw
        typ = opts.get('type', 'str')
        choices = opts.get('choices')
        if name == 'namespace':
            return self.namespace_value(hostile=False)
        if is_path_option(name, opts):
            return self.path_value(name, hostile=False)
        if choices:
            return draw(choice(list(choices)))
        if opts.get('options'):
            if typ == 'list':
                return self.good_list_of_dicts(path, opts['options'])
            return self.good_dict(path, opts['options'])
        if name in ('src', 'dst', 'reply_src', 'reply_dst', 'address'):
            return draw(st.one_of(choice(ADDR4), choice(ADDR6)))
        if name in ('sport', 'dport', 'reply_sport', 'reply_dport', 'port'):
            return draw(choice(PORTS)) if typ == 'int' else draw(choice(PORT_FORMS))
        if name == 'ports':
            return draw(choice(PORT_FORMS))
        if name == 'proto':
            return draw(choice(PROTO_NAMES))
        if name == 'icmp_type':
            return draw(choice([0, 3, 8, 128, 129, 1, 11]))
        if name == 'icmp_code':
            return draw(choice([0, 1, 3]))
        if name == 'icmp_id':
            return draw(choice([0, 1, 5, 77, 65535]))
        if name in ('mark', 'mark_mask'):
            return draw(choice(MARKS))
        if name == 'zone':
            return draw(choice(ZONES))
        if name == 'state' and typ == 'list':
            return draw(st.lists(choice(STATES), min_size=1, max_size=3))
        if name == 'status':
            return draw(st.lists(choice(STATUS), min_size=1, max_size=3))
        if name == 'tcp_state':
            return draw(choice(STATES))
        if name in ('timeout', 'timeout_min'):
            return draw(choice(TIMEOUTS))
        if name == 'labels':
            return draw(choice(LABELS))
        if name == 'query':
            return draw(query_strategy())
        if name in ('limit', 'top', 'max_delete', 'sample_size'):
            return draw(choice([1, 2, 5, 10, 1000] + ([] if name == 'top' else [0])))
        if name == 'helper':
            return draw(choice(HELPER_NAMES))
        if name == 'name' and self.module == 'conntrack_sysctl':
            return draw(choice(self.knob_names))
        if name == 'value' and self.module == 'conntrack_sysctl':
            return self.knob_value((parent or {}).get('name', ''))
        if name == 'settings':
            keys = draw(st.lists(choice(self.knob_names), min_size=1, max_size=4))
            return dict((k, self.knob_value(k)) for k in keys)
        if name in ('iif', 'oif'):
            return draw(choice(IFACES))
        if name == 'synproxy_options':
            opts_ = {}
            for key, values in (('mss', [536, 1460, 1400, 65535, '1460']), ('wscale', [0, 7, 14, '7']),
                                ('timestamp', [True, False]), ('sack_perm', [True, False])):
                if self.p(1 / 3):
                    opts_[key] = draw(choice(values))
            return opts_
        if name == 'connlimit':
            return draw(choice([1, 10, 100, 65535]))
        if name == 'saved' and typ == 'str':
            return draw(choice(SAVED_GOOD))
        return self.generic_good(typ, opts)

    def generic_good(self, typ, opts):
        draw = self.draw
        if typ == 'bool':
            return draw(st.booleans())
        if typ == 'int':
            return draw(st.integers(0, 100))
        if typ == 'float':
            return draw(st.floats(0, 100))
        if typ == 'list':
            elements = opts.get('elements', 'str')
            return draw(st.lists(self.strategy_for_type(elements), max_size=3))
        if typ == 'dict':
            return draw(st.dictionaries(st.text(min_size=1, max_size=8), st.integers(0, 10), max_size=2))
        if typ == 'raw':
            return draw(st.one_of(st.integers(0, 100), st.text(max_size=8)))
        return draw(st.text(alphabet='abcdefghijklmnopqrstuvwxyz0123456789_-.', min_size=1, max_size=12))

    @staticmethod
    def strategy_for_type(typ):
        if typ == 'int':
            return st.integers(0, 100)
        if typ == 'bool':
            return st.booleans()
        if typ == 'dict':
            return st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2)
        return st.text(alphabet='abcdefghijklmnopqrstuvwxyz0123456789_-', min_size=1, max_size=10)

    def hostile(self, name, opts):
        """A hostile value for option ``name`` (never one that could leave the sandbox).

        Mostly (70%) one of the classic traps for this kind of option, else anything of a broad pool.
        """
        draw, rnd = self.draw, self.rnd
        typ = opts.get('type', 'str')
        if name == 'namespace':
            return self.namespace_value(hostile=True)
        if is_path_option(name, opts):
            return self.path_value(name, hostile=True)
        if name == 'query':
            return draw(st.one_of(choice(QUERIES), query_strategy(), text_strategy()))
        targeted = None
        if name in NUMERIC_NAMES or typ in ('int', 'float'):
            targeted = TRAP_NUMBERS
        if name in ADDRESS_NAMES:
            targeted = TRAP_ADDRESSES
        if name in ('iif', 'oif'):
            targeted = TRAP_IFACES
        if name == 'proto':
            targeted = TRAP_NUMBERS + ['tcp\n', ' tcp', 'TCP', 'tcp;', '']
        if name == 'labels':
            targeted = [[v] for v in TRAP_NUMBERS] + [['foo'], [128], [-1], ['٣', 1], 'x', 5]
        if name in ('state', 'status') and typ == 'list':
            targeted = [['²'], ['established\n'], [''], [None], [5], 'ESTABLISHED', ['x' * 5000]]
        if name == 'synproxy_options':
            key = rnd.choice(['mss', 'wscale', 'timestamp', 'sack_perm', 'bogus'])
            bad = rnd.choice(TRAP_BOOLS if key in ('timestamp', 'sack_perm') else TRAP_NUMBERS)
            return {key: bad} if rnd.random() < 0.85 else draw(choice(HOSTILE_DICT))
        if name in ('nat_src', 'nat_dst'):
            targeted = [{'address': a} for a in TRAP_ADDRESSES[:8]] + [{'address': '192.0.2.1', 'port': v}
                                                                       for v in TRAP_NUMBERS[:8]] + [5, 'x', [], {}]
        if name == 'settings':
            key = rnd.choice(self.knob_names)
            return {key: rnd.choice(TRAP_NUMBERS + TRAP_BOOLS + ['5x', '1h-1m', '30 s s'])} if rnd.random() < 0.8 \
                else draw(st.dictionaries(st.one_of(choice(self.knob_names), text_strategy()), hostile_any(),
                                          min_size=1, max_size=3))
        if name == 'value' and self.module == 'conntrack_sysctl':
            targeted = TRAP_NUMBERS + TRAP_BOOLS + ['5x', '1h-1m', '30 s s', '1.5h', '٣s']
        if name == 'saved' and typ == 'str':
            targeted = SAVED_BAD + TRAP_NUMBERS[:4]
        if targeted is None and typ == 'bool':
            targeted = TRAP_BOOLS
        choices = opts.get('choices')
        if choices and targeted is None:
            targeted = [str(c).upper() for c in choices] + [' %s' % c for c in choices] + \
                [c + '\n' for c in choices if isinstance(c, str)] + ['', None, 5, ['x']]
        if targeted is not None and rnd.random() < 0.7:
            return copy.deepcopy(rnd.choice(targeted))
        pools = {'int': number_strategy(), 'float': number_strategy(), 'bool': choice(HOSTILE_BOOL),
                 'list': st.one_of(choice(HOSTILE_LIST), st.lists(hostile_any(), max_size=3)),
                 'dict': choice(HOSTILE_DICT), 'raw': hostile_any()}
        return draw(pools.get(typ, text_strategy()))

    def namespace_value(self, hostile):
        env = self.env
        draw = self.draw
        safe_good = [None, env.name]
        if env.bound:
            safe_good.append(env.bind_path)
        if not hostile:
            return draw(choice(safe_good))
        tails = ['', '\x00', 'x\x00y', '\n', '"', "'", ';', '$(id)', '`id`', '%', '²', '①', '٣', ' ', 'é' * 20,
                 'x' * 300, '\U0001f642', ';reboot', '\x1b', '..', '.']
        return draw(st.one_of(
            st.builds(lambda t: 'ctprop-missing-' + t, choice(tails)),
            st.builds(lambda t: 'ctprop-missing-' + t.replace('/', '_'), st.text(max_size=10)),
            choice([env.not_ns_file, env.a_dir, env.work_dir, os.path.join(env.work_dir, 'nope'),
                    os.path.join(env.work_dir, 'nope\x00x'), os.path.join(env.a_dir, '..', 'not-a-netns'),
                    os.path.join(env.work_dir, 'nope', 'deeper'), env.work_dir + '/', '']),
        ))

    def path_value(self, name, hostile):
        env = self.env
        base = os.path.join(env.work_dir, 'etc')
        if not hostile:
            return self.draw(choice([os.path.join(base, name), os.path.join(base, 'sub', name + '.conf'),
                                     os.path.join(env.work_dir, name)]))
        names = ['x;y', 'x\ny', 'x\x00y', '"q"', "'q'", '²', 'é' * 100, 'x' * 300, '.', '..', ' ', '%s', '`id`',
                 '-rf', 'a b']
        return self.draw(st.one_of(
            st.builds(lambda n: os.path.join(base, n), choice(names)),
            choice([env.not_ns_file, env.a_dir, env.work_dir, env.work_dir + '/', os.path.join(env.not_ns_file, 'x'),
                    os.path.join(env.a_dir, 'x' * 300, 'y'), 'relative-name', 'rel\x00name', '', ' ']),
        ))

    # -- dicts and lists of dicts
    def good_dict(self, path, spec, fill=0.5):
        out = {}
        for name, opts in spec.items():
            if opts.get('required') or self.p(fill):
                out[name] = self.good(path + (name,), name, opts, out)
        return out

    def good_list_of_dicts(self, path, spec):
        draw = self.draw
        kind = self.rnd.randrange(20)
        if kind == 0:
            return []
        if kind == 1:
            return [{}]
        if kind == 2:
            return [dict((k, True) for k in ('all',) if k in spec)] or [{}]
        if kind == 3:
            return [draw(choice([{'direction': 'both'}, {'family': 'ipv4'}, {'state': 'absent'}, {'synproxy': True},
                                 {'proto': 'tcp', 'synproxy': True, 'direction': 'both'}]))]
        count = self.rnd.randint(1, 3)
        rules = []
        for index in range(count):
            rule = self.good_rule(path + (index,), spec)
            rules.append(rule)
        if count > 1 and self.p(1 / 10):
            rules.append(dict(rules[0], state='absent' if rules[0].get('state') != 'absent' else 'present'))
        return rules

    def good_rule(self, path, spec):
        draw = self.draw
        rule = {}
        proto = draw(choice(['tcp', 'tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 'gre', None]))
        if proto:
            rule['proto'] = proto
        if proto in ('tcp', 'udp', 'sctp') and draw(st.booleans()):
            rule['dport'] = draw(choice(PORT_FORMS))
        if proto in ('tcp', 'udp') and self.p(1 / 4):
            rule['sport'] = draw(choice(PORT_FORMS))
        if self.p(1 / 4):
            rule['src' if draw(st.booleans()) else 'dst'] = draw(st.one_of(choice(ADDR4), choice(ADDR6)))
        direction = draw(choice(['inbound', 'inbound', 'output', 'both', None]))
        if direction:
            rule['direction'] = direction
        if self.p(1 / 5):
            rule['iif' if direction in (None, 'inbound') else 'oif'] = draw(choice(IFACES))
        if proto == 'tcp' and direction in (None, 'inbound') and self.p(1 / 3):
            rule['synproxy'] = True
            if draw(st.booleans()):
                rule['synproxy_options'] = self.good((), 'synproxy_options', {'type': 'dict'})
            if self.p(1 / 3):
                rule['connlimit'] = draw(choice([1, 10, 100]))
        for name, opts in spec.items():  # options this generator does not know yet
            if name not in rule and name not in ('proto', 'dport', 'sport', 'src', 'dst', 'direction', 'iif', 'oif',
                                                 'synproxy', 'synproxy_options', 'connlimit') \
                    and self.p(1 / 4):
                rule[name] = self.good(path + (name,), name, opts, rule)
        return rule

    # -- the whole input
    def args(self):
        draw = self.draw
        spec = self.spec
        out = {}
        fill = self.rnd.choice([0.1, 0.2, 0.35])
        coherent = set(n for n in COHERENT if n in spec and (n != 'state' or spec[n].get('type') == 'list')
                       and not spec[n].get('choices') or n == 'family' and spec.get(n, {}).get('choices') == ['ipv4', 'ipv6'])
        if self.p(1 / 5):
            coherent = set()
        for name, opts in spec.items():
            if is_path_option(name, opts):
                out[name] = self.path_value(name, hostile=False)
            elif name in coherent:
                continue
            elif opts.get('required') or self.p(fill):
                out[name] = self.good((name,), name, opts, out)
        if coherent:
            out.update(self.coherent_tuple(coherent))
        self.module_specific(out)
        conflicts = CONFLICTS.get(self.module)
        if conflicts and self.p(1 / 10):
            out.update(copy.deepcopy(draw(choice(conflicts))))
        # one or two hostile values (or none), at the top level or inside a list of dicts
        for _count in range(self.rnd.choice([0, 0, 1, 1, 1, 2])):
            self.inject(out)
        if self.p(1 / 100):
            out[draw(choice(['bogus', 'Namespace', 'src ', 'all_', '']))] = draw(hostile_any())
        return out

    def coherent_tuple(self, names):
        """Filter / entry options that agree with each other (family, proto, ports or ICMP, states)."""
        draw = self.draw
        out = {}
        family = draw(choice(['ipv4', 'ipv4', 'ipv6', None]))
        addrs = {'ipv4': ADDR4, 'ipv6': ADDR6, None: ADDR4 + ADDR6}[family]
        protos = [None, 'tcp', 'tcp', 'udp', 'udp', 'sctp', 'dccp', 'udplite', 'gre', '6', 'TCP', 'igmp']
        protos += ['icmp'] if family != 'ipv6' else ['icmpv6', 'ipv6-icmp']
        required = self.spec.get('proto', {}).get('required')
        proto = draw(choice([p for p in protos if p or not required]))
        if proto and 'proto' in names:
            out['proto'] = proto
        if family and 'family' in names and self.p(1 / 3):
            out['family'] = family
        host_addrs = [a for a in addrs if '/' not in a] if self.module == 'conntrack_entry' else addrs
        family_of = None
        for name in ('src', 'dst', 'reply_src', 'reply_dst'):
            if name in names and self.p(0.6 if self.module == 'conntrack_entry' and name in ('src', 'dst') else 0.25):
                pool = host_addrs if family_of is None else [a for a in host_addrs if (':' in a) == (family_of == 6)]
                value = draw(choice(pool or host_addrs))
                family_of = 6 if ':' in value else 4
                out[name] = value
        number = str(proto).lower()
        if number in ('tcp', '6', 'udp', 'sctp', 'dccp', 'udplite'):
            for name in ('sport', 'dport', 'reply_sport', 'reply_dport'):
                if name in names and self.p(((60 if name in ('sport', 'dport') else 15)) / 100):
                    out[name] = draw(choice(PORTS))
        if number in ('icmp', 'icmpv6', 'ipv6-icmp'):
            v6 = number != 'icmp'
            if 'icmp_type' in names and draw(st.booleans()):
                out['icmp_type'] = draw(choice([128, 129, 1, 135] if v6 else [8, 0, 3, 13]))
                out['icmp_code'] = 0
                out['icmp_id'] = draw(choice([0, 5, 77]))
        if 'mark' in names and self.p(1 / 5):
            out['mark'] = draw(choice(MARKS))
            if 'mark_mask' in names and draw(st.booleans()):
                out['mark_mask'] = draw(choice(MARKS))
        if 'zone' in names and self.p(1 / 5):
            out['zone'] = draw(choice(ZONES))
        stateful = {'tcp': TCP_STATES, '6': TCP_STATES, 'TCP': TCP_STATES, 'sctp': SCTP_STATES, 'dccp': DCCP_STATES}
        if number in ('tcp', '6', 'sctp', 'dccp') or proto == 'TCP':
            states = stateful.get(proto, TCP_STATES)
            if 'state' in names and self.spec['state'].get('type') == 'list' and self.p(1 / 4):
                out['state'] = draw(st.lists(choice(states), min_size=1, max_size=2))
            if 'tcp_state' in names and self.p(1 / 3):
                out['tcp_state'] = draw(choice(states))
        if 'status' in names and self.p(1 / 5):
            out['status'] = draw(st.lists(choice(['SEEN_REPLY', 'ASSURED', 'FIXED_TIMEOUT', 'CONFIRMED']
                                                 if self.module == 'conntrack_entry' else
                                                 ['SEEN_REPLY', 'ASSURED', 'UNREPLIED', 'CONFIRMED']),
                                          min_size=1, max_size=2, unique=True)
                                 .filter(lambda v: not {'SEEN_REPLY', 'UNREPLIED'} <= set(v)))
        if 'timeout' in names and self.p(2 / 3):
            out['timeout'] = draw(choice(TIMEOUTS))
        if 'labels' in names and self.p(1 / 6):
            out['labels'] = draw(choice(LABELS))
        return out

    def module_specific(self, out):
        draw = self.draw
        if self.module == 'conntrack_sysctl':
            if 'value' in out and 'name' not in out and 'settings' not in out and self.p(0.8):
                out['name'] = draw(choice(self.knob_names))
            if 'name' in out:
                if self.p(4 / 5):
                    out['value'] = self.knob_value(out['name'])
                if 'settings' in out and self.p(3 / 4):
                    del out['settings']
            # persisting and state=absent are refused in a namespace: keep them to a few inputs
            if out.get('persist') is True and self.p(0.8):
                out['persist'] = False
            if out.get('state') == 'absent' and self.p(0.8):
                del out['state']
        if self.module == 'conntrack_flush':
            filters = [k for k in COHERENT if k in out]
            if out.get('all') is True and filters and self.p(0.8):
                out['all'] = False
            if not filters and self.p(0.4):
                out['all'] = True
            if out.get('helper') and self.p(0.7):
                out['table'] = 'expect'
            if out.get('table') == 'expect' and self.p(0.7):
                for key in filters:
                    if key not in ('family', 'proto', 'src', 'dst', 'sport', 'dport', 'zone'):
                        del out[key]
        if self.module == 'conntrack_entry' and self.p(0.85):
            self.entry_shape(out)

    def entry_shape(self, out):
        """A whole, consistent entry: a seeded one (update, delete) or a new one (create)."""
        draw, rnd = self.draw, self.rnd
        keep = dict((k, v) for k, v in out.items() if is_path_option(k, self.spec.get(k, {})) or k == 'namespace')
        out.clear()
        out.update(keep)
        if rnd.random() < 0.55:
            target = dict(draw(choice(ENTRY_TARGETS)))
        else:
            proto = rnd.choice(['tcp', 'tcp', 'udp', 'udp', 'icmp', 'icmpv6', 'sctp', 'udplite', 'dccp', 'gre'])
            v6 = proto == 'icmpv6' or (proto != 'icmp' and rnd.random() < 0.4)
            hosts = ['2001:db8::%x' % rnd.randint(16, 4096) for _i in range(2)] if v6 else \
                ['192.0.2.%d' % rnd.randint(10, 250), '198.51.100.%d' % rnd.randint(1, 250)]
            target = {'proto': proto, 'src': hosts[0], 'dst': hosts[1]}
            if proto in ('tcp', 'udp', 'sctp', 'udplite', 'dccp'):
                target.update(sport=rnd.randint(1024, 65535), dport=rnd.choice(PORTS[1:]))
            elif proto in ('icmp', 'icmpv6'):
                target.update(icmp_type=(128 if v6 else 8) if rnd.random() < 0.8 else rnd.choice([0, 1, 3, 129, 135]),
                              icmp_code=0, icmp_id=rnd.randint(0, 65535))
            if proto in ('tcp', 'sctp', 'dccp') and rnd.random() < 0.8:
                target['tcp_state'] = rnd.choice({'tcp': TCP_STATES, 'sctp': SCTP_STATES, 'dccp': DCCP_STATES}[proto])
            if rnd.random() < 0.2:
                target['zone'] = rnd.choice(ZONES)
            if rnd.random() < 0.15:
                target['family'] = 'ipv6' if v6 else 'ipv4'
        out.update(target)
        if rnd.random() < 0.1 and 'src' in out:
            # the reply tuple spelled out (as the inverse, or only part of it)
            reply = {'reply_src': out['dst'], 'reply_dst': out['src']}
            if 'sport' in out:
                reply.update(reply_sport=out['dport'], reply_dport=out['sport'])
            if rnd.random() < 0.3:
                reply.pop(rnd.choice(sorted(reply)))
            out.update(reply)
        if rnd.random() < 0.2:
            out['state'] = 'absent'
            return
        if rnd.random() < 0.7:
            out['timeout'] = rnd.choice(TIMEOUTS)
        if rnd.random() < 0.3:
            out['mark'] = rnd.choice(MARKS)
            if rnd.random() < 0.3:
                out['mark_mask'] = rnd.choice(MARKS)
        if rnd.random() < 0.2:
            out['status'] = rnd.sample(['SEEN_REPLY', 'ASSURED', 'FIXED_TIMEOUT'], rnd.randint(1, 2))
        if out['proto'] == 'tcp' and 'tcp_state' not in out and rnd.random() < 0.4:
            out['tcp_state'] = rnd.choice(TCP_STATES)
        if rnd.random() < 0.15:
            out['timeout_policy'] = 'refresh_below'
            out['timeout'] = out.get('timeout', 600)
            if rnd.random() < 0.7:
                out['timeout_min'] = rnd.choice([1, 60, 3000, 7200])
        if rnd.random() < 0.2:
            out['labels'] = rnd.choice(LABELS)
            if rnd.random() < 0.5:
                out['labels_mode'] = rnd.choice(['add', 'remove', 'exact'])
        if rnd.random() < 0.08:
            nat = {'address': rnd.choice(['192.0.2.200', '198.51.100.200', '2001:db8::200'])}
            if rnd.random() < 0.5 and 'sport' in out:
                nat['port'] = rnd.choice(PORTS[1:])
            out[rnd.choice(['nat_src', 'nat_dst'])] = nat
        for name, opts in self.spec.items():  # options this generator does not know yet
            if name not in out and name not in ENTRY_KNOWN and rnd.random() < 0.2:
                out[name] = self.good((name,), name, opts, out)

    def inject(self, out):
        """Make one value hostile: inside a list of dicts (a rule), in an option given, or in any option."""
        rnd = self.rnd
        spec = self.spec
        nested = [n for n, o in spec.items() if o.get('options') and o.get('type') == 'list'
                  and isinstance(out.get(n), list) and out.get(n) and all(isinstance(r, dict) for r in out[n])]
        if nested and rnd.random() < 0.6:
            name = rnd.choice(nested)
            rules = out[name]
            index = rnd.randrange(len(rules))
            sub_spec = dict(spec[name]['options'])
            rule = dict(rules[index])
            given = [k for k in rule if k in sub_spec]
            sub = rnd.choice(given) if given and rnd.random() < 0.5 else rnd.choice(sorted(sub_spec))
            if sub in ('synproxy_options', 'connlimit') and rnd.random() < 0.8:
                rule.update(proto='tcp', synproxy=True)  # reachable: synproxy options need a SYNPROXY rule
                rule.pop('direction', None)
                rule.pop('oif', None)
            if sub in ('iif',) and rnd.random() < 0.8:
                rule.pop('direction', None)
            if sub in ('dport', 'sport') and rule.get('proto') not in ('tcp', 'udp', 'sctp'):
                rule['proto'] = rnd.choice(['tcp', 'udp'])
            rule[sub] = self.hostile(sub, sub_spec[sub])
            rules[index] = rule
            return
        given = [k for k in out if k in spec and not is_path_option(k, spec[k])]
        name = rnd.choice(given) if given and rnd.random() < 0.6 else rnd.choice(sorted(spec))
        out[name] = self.hostile(name, spec[name])


NUMERIC_NAMES = ('sport', 'dport', 'reply_sport', 'reply_dport', 'port', 'ports', 'connlimit', 'zone', 'icmp_type',
                 'icmp_code', 'icmp_id', 'mark', 'mark_mask', 'timeout', 'timeout_min', 'mss', 'wscale', 'limit',
                 'top', 'max_delete', 'sample_size')
ADDRESS_NAMES = ('src', 'dst', 'reply_src', 'reply_dst', 'address')
TRAP_NUMBERS = ['²', '①', '٣', '٣٣', '１２', float('inf'), float('-inf'), float('nan'), 1460.7, 0.5, 2 ** 32, 2 ** 64,
                4294967296, 65536, 256, -1, 10 ** 100, True, '0x10', ' 7 ', '', None, [], '1e3', '80-', '90-80', '1-2-3',
                '0x10000', '-0', '+5', '99999999999999999999', 'x' * 5000, '\x00']
TRAP_ADDRESSES = ['fe80::1%x', 'fe80::1%x;flush ruleset', 'fe80::1%lo', '2001:db8::1%eth0', '192.0.2.256',
                  '192.0.2.1/33', '192.0.2.1\n', '::ffff:192.0.2.1/96', '2001:db8::1/129', 'localhost', '0x7f000001',
                  '127.1', '192.0.2.01', ' ', '', '\x00', '²', 'x' * 5000, '192.0.2.1; flush ruleset', '1.2.3.4/0.0.0.255']
TRAP_IFACES = ['eth0\n', '\u00e9' * 15, 'a' * 16, 'eth"0', 'eth 0', 'eth/0', 'eth\\0', '', 'lo\x00', 'eth0;', '\u0663',
               'x' * 5000, '{ lo }', '@set', '$var', '*', 'eth*', 5, None, []]
TRAP_BOOLS = ['false', 'no', 'off', '0', 'maybe', '', 'yes', 'True', 2, -1, 0.5, float('nan'), [], {}, None, '٣']


TCP_STATES = ['ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE']
SCTP_STATES = ['ESTABLISHED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'SHUTDOWN_SENT', 'CLOSED']
DCCP_STATES = ['OPEN', 'REQUEST', 'RESPOND', 'PARTOPEN', 'CLOSEREQ', 'CLOSING', 'TIMEWAIT']
# options generated together by ArgGen.coherent_tuple (most of the time)
COHERENT = ('family', 'proto', 'src', 'dst', 'reply_src', 'reply_dst', 'sport', 'dport', 'reply_sport',
            'reply_dport', 'icmp_type', 'icmp_code', 'icmp_id', 'mark', 'mark_mask', 'zone', 'state', 'status',
            'tcp_state', 'timeout', 'labels')

ENTRY_KNOWN = ('state', 'family', 'proto', 'src', 'dst', 'sport', 'dport', 'reply_src', 'reply_dst', 'reply_sport',
               'reply_dport', 'icmp_type', 'icmp_code', 'icmp_id', 'zone', 'timeout', 'timeout_policy', 'timeout_min',
               'tcp_state', 'status', 'mark', 'mark_mask', 'labels', 'labels_mode', 'nat_src', 'nat_dst', 'namespace')

ENTRY_TARGETS = [
    {'proto': 'tcp', 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 40000, 'dport': 443},
    {'proto': 'udp', 'src': '198.51.100.7', 'dst': '192.0.2.1', 'sport': 5353, 'dport': 53},
    {'proto': 'icmp', 'src': '192.0.2.1', 'dst': '198.51.100.9', 'icmp_type': 8, 'icmp_code': 0, 'icmp_id': 77},
    {'proto': 'tcp', 'src': '2001:db8::1', 'dst': '2001:db8::2', 'sport': 40001, 'dport': 22, 'zone': 7},
    {'proto': 'udp', 'src': '2001:db8::5', 'dst': '2001:db8::1', 'sport': 5353, 'dport': 53, 'zone': 3},
    {'proto': 'sctp', 'src': '192.0.2.1', 'dst': '192.0.2.3', 'sport': 3868, 'dport': 3868},
    {'proto': 'tcp', 'src': '192.0.2.7', 'dst': '192.0.2.8', 'sport': 1234, 'dport': 80, 'timeout': 120},
    {'proto': 'udp', 'src': '2001:db8::7', 'dst': '2001:db8::8', 'sport': 1, 'dport': 2, 'timeout': 60},
]

CONFLICTS = {
    'conntrack_info': [{'mark_mask': 1}, {'family': 'ipv4', 'src': '2001:db8::1'}, {'proto': 'tcp', 'icmp_type': 8},
                       {'proto': 'icmp', 'family': 'ipv6'}, {'dport': 53}, {'status': ['UNREPLIED', 'SEEN_REPLY']},
                       {'proto': 'udp', 'state': ['ESTABLISHED']}, {'src': '192.0.2.1', 'dst': '2001:db8::1'}],
    'conntrack_entry': [{'proto': 'tcp', 'icmp_type': 8}, {'proto': 'udp', 'tcp_state': 'ESTABLISHED'},
                        {'family': 'ipv6', 'src': '192.0.2.1'}, {'state': 'absent', 'timeout': 5},
                        {'mark_mask': 1}, {'timeout_policy': 'refresh_below'},
                        {'labels_mode': 'exact', 'labels': []}, {'nat_src': {'address': '2001:db8::1'}}],
    'conntrack_flush': [{'table': 'expect', 'state': ['ESTABLISHED']}, {'all': True, 'proto': 'tcp'},
                        {'table': 'expect', 'mark': 1}, {'helper': 'ftp', 'table': 'conntrack'},
                        {'max_delete': 0, 'all': True}],
    'conntrack_sysctl': [{'name': 'max', 'settings': {'max': 1}}, {'value': 1}, {'state': 'absent', 'name': 'max'},
                         {'persist': True, 'name': 'tcp_loose', 'value': 0},
                         {'apply': False, 'persist': False, 'name': 'tcp_loose', 'value': 1},
                         {'settings': {'tcp_loose': 1, 'nf_conntrack_tcp_loose': 0}},
                         {'settings': {'frag6_low_thresh': 9999999, 'frag6_high_thresh': 1}},
                         {'name': 'max', 'value': 1, 'force': True}],
    'conntrack_helper': [{'helper': 'ftp', 'proto': 'udp'}, {'helper': 'pptp', 'family': 'ipv6'},
                         {'helper': 'snmp', 'src': '2001:db8::1'}, {'family': 'ipv4', 'dst': '2001:db8::1'},
                         {'persist': True}, {'ports': []}],
    'conntrack_notrack': [{'rules': [{'proto': 'udp', 'synproxy': True}]},
                          {'rules': [{'proto': 'tcp', 'direction': 'output', 'iif': 'lo'}]},
                          {'rules': [{'synproxy_options': {'mss': 1400}}]},
                          {'rules': [{'proto': 'tcp', 'dport': 1, 'state': 'absent'},
                                     {'proto': 'tcp', 'dport': 1, 'state': 'present'}]},
                          {'rules': [{'family': 'ipv4', 'src': '2001:db8::1'}]},
                          {'rules': [{'proto': 'icmp', 'family': 'ipv6'}]}, {'persist': True},
                          {'rules': [], 'exclusive': True, 'drop_invalid': False}],
}


@st.composite
def module_args(draw, env, module):
    return ArgGen(env, module, draw).args()


@st.composite
def call_inputs(draw, env, module):
    """(args, check_mode, diff): about a third of the calls in check mode, half with diff."""
    gen = ArgGen(env, module, draw)
    args = gen.args()
    return args, gen.p(0.3), gen.p(0.5)
