"""Runs the translated conntrack-tools test suite (conformance_cases.py) and accounts for every step.

Each case runs in two fresh namespaces side by side: ``ctcf-cli-N`` where conntrack-tools runs the step as the
suite wrote it, and ``ctcf-mod-N`` where the collection's modules run our translation of it (as Ansible runs
them: tests/integration/ctin_support.run_module with ``namespace:``). After every step both tables are read
and compared:

* the ``conntrack -L -o extended`` view: every line, without what differs by nature (timeout, use, id);
* the netlink view (pyroute2, the tests' reference decoder): orig tuple, zone, status bits, TCP window-tracking
  flags of both directions, mark. ``conntrack -L`` does not print the TCP flags; this view does.

A step is accounted as one of CATEGORIES:

* ``agree``: conntrack OK and the task succeeds; or conntrack BAD on bad input and the task fails with a
  message naming the option; and the tables (and, for listings, the listed entries) are the same;
* ``idempotent difference``: conntrack BAD because the entry exists or nothing matched, the task succeeds
  with ``changed: false``; tables the same;
* ``intended difference``: the outcomes agree and the tables are the same, but a listing differs where
  conntrack-tools is known to be wrong (the step's ``listing_differs`` says how);
* ``no equivalent``: the collection has no translation (yet: a step gated on a feature another branch
  adds is accounted so while that feature is absent); the step is replayed with conntrack-tools in the
  module namespace too, so the tables stay comparable for the steps that follow;
* ``defect``: the task's outcome is not the one stated, a listing differs, or the step made the tables
  differ (only differences the step introduced are charged to it). Known defects (KNOWN_DEFECTS) are
  reported by name;
* ``conntrack-tools deviates``: conntrack-tools itself did not give the outcome its suite states (the
  installed release is not the one the suite was written for).

``python tests/integration/conformance.py [--markdown] [CASE...]`` (as root) runs the cases (three at a time)
and prints the accounting table (with ``--markdown``: the table and the lists of differences for docs/write-path.md).
"""
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ctin_support as ct  # noqa: E402  pylint: disable=wrong-import-position
import conntrack_text  # noqa: E402  pylint: disable=wrong-import-position
import conformance_cases as cases  # noqa: E402  pylint: disable=wrong-import-position

CATEGORIES = ('agree', 'idempotent difference', 'intended difference', 'no equivalent', 'defect',
              'conntrack-tools deviates')
FILTER_FEATURES = ('src_nat', 'dst_nat', 'any_nat', 'orig_zone', 'reply_zone', 'label')
TCP_FLAG_CLOSE_INIT = 0x04
# Defects found by this suite and fixed since (window-tracking flags, CLOSE_INIT for closing states): none is
# known now, so every defect fails the test. Name one here only with the reason it cannot be fixed yet.
KNOWN_DEFECTS = {}
UNSTABLE = ('timeout', 'use', 'id')

SNAPSHOTTER = r"""
import json, socket, sys
try:
    from pyroute2 import NFCTSocket
except ImportError:
    NFCTSocket = None
FAMILIES = {socket.AF_INET: 'ipv4', socket.AF_INET6: 'ipv6'}
PROTO = {'CTA_PROTO_SRC_PORT': 'sport', 'CTA_PROTO_DST_PORT': 'dport', 'CTA_PROTO_ICMP_TYPE': 'icmp_type',
         'CTA_PROTO_ICMP_CODE': 'icmp_code', 'CTA_PROTO_ICMP_ID': 'icmp_id', 'CTA_PROTO_ICMPV6_TYPE': 'icmp_type',
         'CTA_PROTO_ICMPV6_CODE': 'icmp_code', 'CTA_PROTO_ICMPV6_ID': 'icmp_id', 'CTA_PROTO_NUM': 'protonum'}
def tup(node, out, prefix):
    for name, value in (a[:2] for a in node['attrs']):
        if name == 'CTA_TUPLE_IP':
            for iname, ivalue in (a[:2] for a in value['attrs']):
                out[prefix + ('src' if iname.endswith('_SRC') else 'dst')] = ivalue
        elif name == 'CTA_TUPLE_PROTO':
            for pname, pvalue in (a[:2] for a in value['attrs']):
                if pname in PROTO:
                    out[prefix + PROTO[pname]] = pvalue
        elif name == 'CTA_TUPLE_ZONE':
            out[prefix + 'tuple_zone'] = value
def dump():
    rows = []
    for family in FAMILIES:
        with NFCTSocket(nfgen_family=family) as sock:
            for msg in sock.dump():
                row = {'family': FAMILIES[family], 'zone': 0, 'mark': 0}
                for name, value in (a[:2] for a in msg['attrs']):
                    if name == 'CTA_TUPLE_ORIG':
                        tup(value, row, '')
                    elif name == 'CTA_TUPLE_REPLY':
                        tup(value, row, 'reply_')
                    elif name in ('CTA_STATUS', 'CTA_ZONE', 'CTA_MARK'):
                        row[name[4:].lower()] = value
                    elif name == 'CTA_PROTOINFO':
                        for pname, pvalue in (a[:2] for a in value['attrs']):
                            for sname, svalue in (a[:2] for a in pvalue['attrs']):
                                if sname.startswith('CTA_PROTOINFO_TCP_FLAGS_'):
                                    row['tcp_flags_' + sname.rsplit('_', 1)[1].lower()] = svalue[0]
                                elif sname.endswith('_STATE'):
                                    row['state'] = svalue
                rows.append(row)
    return rows
for line in sys.stdin:
    sys.stdout.write(json.dumps(dump() if NFCTSocket else None) + '\n')
    sys.stdout.flush()
"""


# --- features of the collection under test ------------------------------------------------------

def features():
    """The gated features this collection has: filter options in FILTER_ARGSPEC, ``entries`` of conntrack_entry."""
    link = os.path.join(ct.SRC, 'ansible_collections', 'netfilter', 'conntrack')
    if not os.path.islink(link):  # what tests/conftest.py makes on first use, for runs outside pytest
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ct.ROOT, link)
    if ct.SRC not in sys.path:
        sys.path.insert(0, ct.SRC)
    # pylint: disable=import-outside-toplevel,import-error
    from ansible_collections.netfilter.conntrack.plugins.module_utils import _filter, _entryspec

    have = set(f for f in FILTER_FEATURES if f in _filter.FILTER_ARGSPEC)
    if 'entries' in _entryspec.ENTRY_ARGSPEC:
        have.add('entries')
    else:
        # the option may live in the module's own argument spec: ask the module (check mode, no namespace needed)
        _rc, result, _err = ct.run_module('conntrack_entry', {'entries': [], 'proto': 'tcp'}, check_mode=True)
        if 'Unsupported parameters' not in result.get('msg', ''):
            have.add('entries')
    return have


# --- the two sides --------------------------------------------------------------------------------

class Snapshotter(object):
    """A long-lived process in a namespace that answers each request line with the netlink view (JSON)."""

    def __init__(self, ns):
        self.proc = subprocess.Popen(['ip', 'netns', 'exec', ns, ct.PYTHON, '-c', SNAPSHOTTER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, universal_newlines=True)

    def rows(self):
        self.proc.stdin.write('\n')
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Pair(object):
    """The CLI namespace and the module namespace of one case, made fresh and always removed."""

    def __init__(self, index):
        self.cli_ns = 'ctcf-cli-%d' % index
        self.mod_ns = 'ctcf-mod-%d' % index
        self.snap = {}

    def __enter__(self):
        for ns in (self.cli_ns, self.mod_ns):
            ct.sh('ip', 'netns', 'del', ns, check=False)
        try:
            for ns in (self.cli_ns, self.mod_ns):
                ct.sh('ip', 'netns', 'add', ns)
                ct.sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
                self.snap[ns] = Snapshotter(ns)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for snap in self.snap.values():
            try:
                snap.close()
            except (OSError, subprocess.TimeoutExpired):
                snap.proc.kill()
        for ns in (self.cli_ns, self.mod_ns):
            ct.sh('ip', 'netns', 'del', ns, check=False)


def run_cli(ns, step):
    """Run the step with conntrack-tools in ``ns``: (ok, stdout of the command whose status counts)."""
    args = shlex.split(step['cli'])
    if step.get('pipe'):
        first = ct.conntrack(ns, *shlex.split(step['pipe']['cli']), check=False)
        text = first.stdout
        for old, new in step['pipe']['replace']:
            text = text.replace(old, new)
        proc = subprocess.run(['ip', 'netns', 'exec', ns, 'conntrack'] + args, input=text, universal_newlines=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    elif step.get('stdin') is not None:
        proc = subprocess.run(['ip', 'netns', 'exec', ns, 'conntrack'] + args, input='\n'.join(step['stdin']) + '\n',
                              universal_newlines=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                              check=False)
    else:
        if args[0] == '-L' and '-o' not in args:
            args += ['-o', 'extended']  # the listing's format only: what is listed stays the same
        proc = ct.conntrack(ns, *args, check=False)
    return proc.returncode == 0, proc.stdout


def run_ours(ns, tasks):
    """Run the translation's tasks in order: ('fail', msg) at the first failure, else ('ok', changed, listed)."""
    changed = False
    listed = None
    for task in tasks:
        params = dict(task['params'])
        if params.get('entries') is cases.FROM_LISTING:
            params['entries'] = [dict(e, **task.get('set', {})) for e in listed or ()]
        rc, result, stderr = ct.run_module(task['module'], params, namespace=ns)
        if 'Traceback' in stderr:
            return ('traceback', stderr[-2000:]), listed
        if rc != 0 or result.get('failed'):
            return ('fail', result.get('msg', '')), listed
        changed = changed or bool(result.get('changed'))
        if task['module'] == 'conntrack_info':
            listed = result.get('entries', [])
    return ('ok', changed), listed


def outcome_matches(expect, outcome):
    kind = outcome[0]
    if expect.startswith('fail:'):
        if kind != 'fail':
            return False
        return any(re.search(r'(^|[^a-z_])%s([^a-z_]|$)' % re.escape(opt), outcome[1])
                   for opt in expect[5:].split('|'))
    if kind != 'ok':
        return False
    return expect == 'ok' or (expect == 'changed') == outcome[1]


# --- the tables -----------------------------------------------------------------------------------

def listing_view(ns):
    text = ct.conntrack(ns, '-L', '-o', 'extended', check=False).stdout
    rows = []
    for entry in conntrack_text.parse_listing(text):
        row = dict((k, v) for k, v in entry.items() if k not in UNSTABLE)
        row['flags'] = sorted(row['flags'])
        rows.append(json.dumps(row, sort_keys=True))
    return sorted(rows)


def netlink_view(pair, ns):
    rows = pair.snap[ns].rows()
    return None if rows is None else sorted(json.dumps(r, sort_keys=True) for r in rows)


def tables(pair):
    """{view: (cli rows, module rows)}."""
    views = {'conntrack -L': (listing_view(pair.cli_ns), listing_view(pair.mod_ns))}
    cli_rows, mod_rows = netlink_view(pair, pair.cli_ns), netlink_view(pair, pair.mod_ns)
    if cli_rows is not None:
        views['netlink'] = (cli_rows, mod_rows)
    return views


def differences(views):
    """The set of (view, side, row) that only one side holds."""
    diff = set()
    for view, (cli_rows, mod_rows) in views.items():
        diff.update((view, 'conntrack only', r) for r in set(cli_rows) - set(mod_rows))
        diff.update((view, 'collection only', r) for r in set(mod_rows) - set(cli_rows))
    return diff


IDENTITY = ('family', 'protonum', 'proto', 'src', 'dst', 'sport', 'dport', 'icmp_type', 'icmp_code', 'icmp_id', 'zone')


def _grouped(new):
    """{(view, identity): {side: row dict}} of the differing rows."""
    groups = {}
    for view, side, row in new:
        entry = json.loads(row)
        ident = json.dumps([entry.get(k) for k in IDENTITY])
        groups.setdefault((view, ident), {})[side] = entry
    return groups


def describe_group(key, sides):
    """One entry's difference: the fields that differ, or the whole entry that one side lacks."""
    view, ident = key
    if len(sides) == 2:
        ours, theirs = sides['collection only'], sides['conntrack only']
        fields = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        return '%s %s: %s' % (view, ident, ', '.join('%s conntrack %r, collection %r'
                                                     % (k, theirs.get(k), ours.get(k)) for k in fields))
    (side, entry), = sides.items()
    return '%s: %s %s' % (view, side, json.dumps(entry, sort_keys=True))


def describe(groups):
    return '; '.join(describe_group(key, sides) for key, sides in sorted(groups.items()))


def classify(groups):
    """The known defect that explains every difference in ``groups`` (from _grouped), or None."""
    found = set()
    for (view, _ident), sides in groups.items():
        if view != 'netlink' or len(sides) != 2:
            return None
        ours, theirs = sides['collection only'], sides['conntrack only']
        fields = set(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if not fields or not fields <= {'tcp_flags_original', 'tcp_flags_reply'}:
            return None
        for field in fields:
            if not ours.get(field):
                found.add('tcp-window-flags')
            elif ours[field] == theirs.get(field, 0) & ~TCP_FLAG_CLOSE_INIT:
                found.add('tcp-close-init')
            else:
                return None
    return found.pop() if len(found) == 1 else None


def listed_keys_cli(stdout):
    return sorted(conntrack_text.key_of(e) for e in conntrack_text.parse_listing(stdout))


def listed_keys_ours(entries):
    return sorted(conntrack_text.key_of(dict(e, zone=e.get('zone', 0))) for e in entries)


# --- one case -------------------------------------------------------------------------------------

def run_case(name, index, have):
    """Run case ``name``; returns the list of step records (dicts with ``category`` and ``detail``)."""
    records = []
    with Pair(index) as pair:
        before = set()
        for step in cases.CASES[name]:
            record = dict(line=step['line'], cli=step['cli'], cli_expect=step['cli_expect'], expect=step['expect'],
                          why=step.get('why'), detail='')
            cli_ok, cli_out = run_cli(pair.cli_ns, step)
            record['cli_ok'] = cli_ok
            missing = [f for f in step.get('needs', ()) if f not in have]
            listing_problem = None
            if step['ours'] is None or missing:
                run_cli(pair.mod_ns, step)  # keeps the tables in step for what follows
                record['category'] = 'no equivalent'
                record['detail'] = step.get('none') or 'no equivalent yet: needs %s' % ', '.join(missing)
                outcome = None
            else:
                outcome, listed = run_ours(pair.mod_ns, step['ours'])
                record['outcome'] = list(outcome)
                if outcome[0] == 'ok' and listed is not None and step['cli'].startswith('-L') and cli_ok:
                    theirs, ours = listed_keys_cli(cli_out), listed_keys_ours(listed)
                    if theirs != ours:
                        listing_problem = 'listed: conntrack %s, collection %s' % (theirs, ours)
            # charge the step with the differences it introduced: per entry, what differs (lingering ones are not
            # charged again when the entry changes in the same way on both sides)
            groups = _grouped(differences(tables(pair)))
            signatures = dict((describe_group(key, sides), (key, sides)) for key, sides in groups.items())
            introduced = dict(v for k, v in signatures.items() if k not in before)
            before = set(signatures)
            if outcome is None:
                if introduced:
                    record['detail'] += '; tables differ after the replay: %s' % describe(introduced)
                records.append(record)
                continue
            problems = []
            if not outcome_matches(step['expect'], outcome):
                problems.append('expected %s, got %s' % (step['expect'], outcome))
            if listing_problem:
                problems.append(listing_problem)
            known = None
            if introduced:
                known = classify(introduced)
                problems.append('tables differ: %s' % describe(introduced))
            if cli_ok != (step['cli_expect'] == 'OK'):
                record['category'] = 'conntrack-tools deviates'
                record['detail'] = 'conntrack-tools gave %s' % ('OK' if cli_ok else 'BAD')
                if problems:
                    record['detail'] += '; ' + '; '.join(problems)
            elif step.get('listing_differs') and problems == [listing_problem]:
                record['category'] = 'intended difference'
                record['detail'] = '%s (%s)' % (step['listing_differs'], listing_problem)
            elif problems:
                record['category'] = 'defect'
                record['defect'] = known if known and len(problems) == 1 else None
                record['detail'] = '; '.join(problems)
            elif step['cli_expect'] == 'BAD' and step['expect'] == 'unchanged':
                record['category'] = 'idempotent difference'
            else:
                record['category'] = 'agree'
            records.append(record)
    return records


def tally(all_records):
    """{case: {category: count}} plus a 'total' row."""
    table = {}
    for name, records in all_records.items():
        row = dict((c, 0) for c in CATEGORIES)
        for record in records:
            row[record['category']] += 1
        table[name] = row
    table['total'] = dict((c, sum(table[n][c] for n in all_records)) for c in CATEGORIES)
    return table


def format_table(table, markdown=False):
    head = ['case', 'steps'] + list(CATEGORIES)
    rows = [[name, str(sum(row.values()))] + [str(row[c]) for c in CATEGORIES] for name, row in table.items()]
    if markdown:
        lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
        return '\n'.join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    return '\n'.join('  '.join(x.ljust(w) for x, w in zip(r, widths)) for r in [head] + rows)


def run_cases(names, have, workers=3):
    """{case: records} of ``names``, ``workers`` cases at a time (each in its own namespaces)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [(name, pool.submit(run_case, name, list(cases.CASES).index(name), have)) for name in names]
        return dict((name, future.result()) for name, future in futures)


def main(argv):
    markdown = '--markdown' in argv
    names = [a for a in argv if not a.startswith('--')] or list(cases.CASES)
    have = features()
    all_records = run_cases(names, have)
    print('features present: %s' % (', '.join(sorted(have)) or 'none of the gated ones'))
    print(format_table(tally(all_records), markdown))
    for name, records in all_records.items():
        for record in records:
            if record['category'] in ('defect', 'conntrack-tools deviates', 'no equivalent') or (
                    markdown and record['category'] == 'idempotent difference'):
                print('%s:%d [%s%s] %s -> %s' % (name, record['line'], record['category'],
                                                 ': ' + record['defect'] if record.get('defect') else '',
                                                 record['cli'], record['detail'] or record.get('why') or ''))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
