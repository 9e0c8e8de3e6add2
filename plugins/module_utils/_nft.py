# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one nftables table this collection owns: run nft, read and parse the table, apply and persist it.

``inet netfilter_conntrack`` is rendered whole from the desired state and applied in one ``nft -f`` transaction
(declare, delete, define), so a change is atomic and no other table is ever read for writing,
flushed or reordered. Every rule carries a comment ``nc:<kind>:<id>`` where the id is a hash of
the rule's normalised spec: a second run recognises its rules and changes nothing, and rules of
other kinds (or other tasks) found in the table are carried over verbatim. What the rules are
(NOTRACK, SYNPROXY, helpers) is ``_nftrules``; this file knows the table as a whole.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._files import FileChanges, read_file

TABLE_FAMILY = 'inet'
TABLE_NAME = 'netfilter_conntrack'
DEFAULT_PERSIST_FILE = '/etc/netfilter-conntrack/netfilter_conntrack.nft'
DEFAULT_UNIT_FILE = '/etc/systemd/system/netfilter-conntrack.service'
# the options of every module that manages the table (documented in doc_fragments/nft_table.py)
PERSIST_ARGSPEC = dict(
    persist=dict(type='bool', default=False),
    persist_file=dict(type='path', default=DEFAULT_PERSIST_FILE),
    unit_file=dict(type='path', default=DEFAULT_UNIT_FILE),
)

# chain name -> (hook, priority); the order is the order of the rendered table
CHAINS = (
    ('prerouting', 'type filter hook prerouting priority raw; policy accept;'),
    ('output', 'type filter hook output priority raw; policy accept;'),
    # before a host firewall at priority filter: SYNPROXY must see the client's ACK first
    ('input', 'type filter hook input priority filter - 10; policy accept;'),
    # helpers are assigned after conntrack (-200) has made the entry
    ('helpers_in', 'type filter hook prerouting priority filter; policy accept;'),
    ('helpers_out', 'type filter hook output priority filter; policy accept;'),
)
COMMENT_RE = re.compile(r'comment "nc:([a-z_]+)(?::([0-9a-f]+))?"')
SET_RE = re.compile(r'^\tset (cl[46]_[0-9a-f]+) \{$')


# --- running nft ---------------------------------------------------------------------------------

def nft_binary():
    path = shutil.which('nft') or next((p for p in ('/usr/sbin/nft', '/sbin/nft') if os.path.exists(p)), None)
    if path is None:
        raise ConntrackError('the nft command is missing on this host: install the nftables package '
                             '(apt-get install nftables / dnf install nftables)')
    return path


def run_nft(args, stdin=None):
    """nft with an argument list (no shell) in the C locale: nft_error and read_table match its English stderr."""
    env = dict(os.environ, LC_ALL='C', LANG='C')
    proc = subprocess.run([nft_binary()] + list(args), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def nft_error(stderr, action):
    text = stderr.strip()
    if 'Operation not supported' in text or 'Protocol not supported' in text:
        return ConntrackError('%s failed: this kernel has no nf_tables support for it (%s)' % (action, text))
    if 'Operation not permitted' in text:
        return ConntrackError('%s failed: needs CAP_NET_ADMIN (run as root / become: true)' % action)
    return ConntrackError('%s failed: %s' % (action, text))


def read_table():
    """The owned table as ``nft list`` prints it, or None when it does not exist."""
    rc, out, err = run_nft(['list', 'table', TABLE_FAMILY, TABLE_NAME])
    if rc == 0:
        return out
    if 'No such file or directory' in err or 'does not exist' in err:
        return None
    raise nft_error(err, 'reading table %s %s' % (TABLE_FAMILY, TABLE_NAME))


# --- the table as it is ---------------------------------------------------------------------------

class Owned(object):
    """What our table holds: rule lines per chain tagged with (kind, id), dynamic sets, helper objects."""

    def __init__(self):
        self.lines = dict((name, []) for name, _hook in CHAINS)  # chain -> [(kind, id, line)]
        self.blocks = {}  # set/object name -> block text (kept verbatim, elements dropped)
        self.extra_chains = {}  # chains we do not render ourselves -> (header line, [(kind, id, line)])

    def ids(self, kind):
        found = set()
        for entries in list(self.lines.values()) + [v[1] for v in self.extra_chains.values()]:
            for k, rid, _line in entries:
                if k == kind and rid:
                    found.add(rid)
        return found

    def has(self, kind):
        return any(k == kind for entries in self.lines.values() for k, _r, _l in entries)


def parse_table(text):
    """Parse ``nft list table`` output of our table into an Owned."""
    owned = Owned()
    if not text:
        return owned
    chain = None
    block = None
    for raw in text.splitlines():
        if block is not None:
            name, body = block
            if raw.startswith('\t}'):
                owned.blocks[name] = '\n'.join(body + ['\t}'])
                block = None
            elif not raw.strip().startswith('elements'):
                body.append(raw)
            continue
        match = SET_RE.match(raw)
        if match or raw.startswith('\tct helper '):
            name = match.group(1) if match else raw.split()[2]
            block = (name, [raw])
            continue
        if raw.startswith('\tchain '):
            chain = raw.split()[1]
            continue
        if raw.startswith('\t}'):
            chain = None
            continue
        if chain is None or not raw.startswith('\t\t') or raw.strip().startswith('type '):
            continue
        line = raw.strip()
        tag = COMMENT_RE.search(line)
        kind, rid = (tag.group(1), tag.group(2)) if tag else ('foreign', None)
        if chain in owned.lines:
            owned.lines[chain].append((kind, rid, line))
        else:
            owned.extra_chains.setdefault(chain, (None, []))[1].append((kind, rid, line))
    return owned


SYNPROXY_LINE_RE = re.compile(r' ct state invalid,untracked synproxy .*comment "nc:notrack:([0-9a-f]+)"$')


def drop_invalid_of(synproxy_line):
    """The scoped drop for a SYNPROXY line as ``nft list`` prints it (rules carried over from earlier tasks)."""
    match = SYNPROXY_LINE_RE.search(synproxy_line)
    if match is None:
        return None
    return synproxy_line[:match.start()] + ' ct state invalid drop comment "nc:drop_invalid:%s"' % match.group(1)


_FAMILY_RE = re.compile(r'(?:^| )(?:meta nfproto (ipv4|ipv6)|(ip6?) (?:saddr|daddr) )')
_DPORT_RE = re.compile(r'(?:^| )tcp dport (\{ [^}]* \}|[0-9]+(?:-[0-9]+)?)')


def protected_traffic(text):
    """What the owned table's SYNPROXY rules protect, from ``nft list table`` text: [(family or None,
    [(low port, high port)] (empty: every TCP port))]. Entries of that traffic cannot be re-created mid-stream."""
    owned = parse_table(text)
    found = []
    for kind, _rid, line in owned.lines['input']:
        if kind != 'notrack' or ' synproxy ' not in line:
            continue
        family = _FAMILY_RE.search(line)
        family = None if family is None else (family.group(1) or ('ipv4' if family.group(2) == 'ip' else 'ipv6'))
        ports = []
        dport = _DPORT_RE.search(line)
        if dport is not None:
            for item in dport.group(1).strip('{} ').split(','):
                low, _sep, high = item.strip().partition('-')
                ports.append((int(low), int(high or low)))
        found.append((family, ports))
    return found


def describe_protected(family, ports):
    text = ', '.join(str(low) if low == high else '%d-%d' % (low, high) for low, high in ports)
    return '%s tcp%s' % (family or 'ipv4/ipv6', ' dport ' + text if text else ' (every port)')


def render_table(chain_lines, blocks):
    """The whole table text (no leading declare/delete)."""
    out = ['table %s %s {' % (TABLE_FAMILY, TABLE_NAME)]
    for name in sorted(blocks):
        out.append(blocks[name])
        out.append('')
    for name, hook in CHAINS:
        body = chain_lines.get(name) or []
        if not body:
            continue
        out.append('\tchain %s {' % name)
        out.append('\t\t' + hook)
        out.extend('\t\t' + line for line in body)
        out.append('\t}')
        out.append('')
    if out[-1] == '':
        out.pop()
    out.append('}')
    return '\n'.join(out) + '\n'


def transaction(table_text):
    """nft -f input replacing our table atomically (or removing it when ``table_text`` is None)."""
    head = 'table %s %s\ndelete table %s %s\n' % (TABLE_FAMILY, TABLE_NAME, TABLE_FAMILY, TABLE_NAME)
    return head + (table_text or '')


def check_persist(params, initial_namespace):
    if params.get('persist') and not initial_namespace:
        raise ConntrackError('persist: true writes boot-time files, which only the initial network namespace '
                             'loads; create the rules from whatever creates the namespace instead')


def apply_table(result, params, current_text, after_text, changed, check_mode, files=None):
    """Add the diff to ``result``; check the new table with ``nft -c``, persist it when asked, then apply it.
    Returns True when the table in the kernel was replaced.

    The order makes a failure change nothing: a table nft refuses is refused before any file is written,
    and files written for a table that then fails to apply are put back. ``files`` (a ``FileChanges``) keeps
    the file changes for a caller that may have to undo them later (``undo_table``).
    """
    result['diff'] = dict(before=current_text or '', after=after_text or '',
                          before_header='nft list table %s %s' % (TABLE_FAMILY, TABLE_NAME),
                          after_header='rendered table')
    apply = changed and not (check_mode and after_text is None)
    if apply:
        rc, _out, err = run_nft(['-c', '-f', '-'], stdin=transaction(after_text))
        if rc != 0:
            raise nft_error(err, 'checking the rendered table')
    files = FileChanges() if files is None else files
    if params.get('persist'):
        paths = [DEFAULT_PERSIST_FILE if params.get(key) is None else params[key]
                 for key in ('persist_file', 'unit_file')]
        try:
            result['persisted'] = persist(after_text, paths[0], paths[1], check_mode, files)
        except ConntrackError as exc:
            raise files.undo(exc)  # a unit written without its table file (or the reverse) is put back
        result['changed'] = result['changed'] or result['persisted']['changed']
    if apply and not check_mode:
        rc, _out, err = run_nft(['-f', '-'], stdin=transaction(after_text))
        if rc != 0:
            raise files.undo(nft_error(err, 'applying the table'))
        return True
    return False


def undo_table(before_text, applied, files):
    """Put back what a successful ``apply_table`` changed: the table as ``before_text`` (None: no table) when
    ``applied``, then the files. Returns what could not be put back ([] when all was)."""
    failed = []
    if applied:
        rc, _out, err = run_nft(['-f', '-'], stdin=transaction(before_text))
        if rc != 0:
            failed.append('the nft table %s %s (%s)' % (TABLE_FAMILY, TABLE_NAME, (err or '').strip()))
    failed.extend('%s (file)' % path for path in files.rollback())
    return failed


UNIT_TEXT = '''# Managed by Ansible (netfilter.conntrack); loads the collection's nft table at boot.
[Unit]
Description=netfilter.conntrack nftables table (notrack rules, helpers, SYNPROXY)
After=nftables.service
Wants=network-pre.target
Before=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={nft} -f {path}

[Install]
WantedBy=multi-user.target
'''


def persist(table_text, path, unit_path, check_mode, files):
    """Write (or remove) the boot-time copy of the table and a systemd unit that loads it after nftables,
    through ``files`` (a ``FileChanges``, so the caller can undo them)."""
    written = []
    changed = False
    wants = os.path.join(os.path.dirname(unit_path), 'multi-user.target.wants', os.path.basename(unit_path))
    if table_text is None:
        for target, option in ((path, 'persist_file'), (unit_path, 'unit_file')):
            if read_file(target, option) is not None:
                changed = True
                written.append(target)
                if not check_mode:
                    files.remove(target, option)
        if os.path.lexists(wants) and not check_mode:
            files.remove(wants, 'unit_file')
        return dict(changed=changed, removed=written)
    content = '# Managed by Ansible (netfilter.conntrack); loading it replaces the table atomically.\n' + \
        transaction(table_text)
    unit = UNIT_TEXT.format(nft='/usr/sbin/nft', path=path)
    for target, text, option in ((path, content, 'persist_file'), (unit_path, unit, 'unit_file')):
        if read_file(target, option) != text:
            changed = True
            written.append(target)
            if not check_mode:
                files.write(target, text, option=option)
    if not check_mode and not os.path.lexists(wants):
        files.symlink(unit_path, wants, option='unit_file')
    return dict(changed=changed, written=written, path=path, unit=unit_path)
