# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What goes in the owned nft table: NOTRACK/SYNPROXY rules and helper assignments, validated and planned.

``normalize_notrack`` validates one rule (every value that reaches nft is checked against nft's grammar
for its token) into a canonical dict whose hash is the rule's id; ``render_*`` turn canonical rules into
table lines; ``NotrackPlan`` and ``HelperPlan`` compute the whole desired table from what is there
(``_nft.parse_table``) and hand it to ``_nft.apply_table``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC, ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import PORT_PROTO_NAMES
from ansible_collections.netfilter.conntrack.plugins.module_utils._files import FileChanges, read_file
from ansible_collections.netfilter.conntrack.plugins.module_utils._nft import (
    CHAINS, COMMENT_RE, PERSIST_ARGSPEC, TABLE_FAMILY, TABLE_NAME, apply_table, check_persist, drop_invalid_of,
    parse_table, read_table, render_table, undo_table)
from ansible_collections.netfilter.conntrack.plugins.module_utils._validate import (
    check_ifname, parse_int, parse_network, parse_port_spec)

U32_MAX = 0xffffffff
# the protocols a rule may match: those with ports (_ctvocab's names), and a few without
PROTOS = PORT_PROTO_NAMES + ('icmp', 'icmpv6', 'gre', 'esp', 'ah')
DIRECTIONS = ('inbound', 'output', 'both')

NOTRACK_RULE_SPEC = dict(
    proto=dict(type='str'),
    dport=dict(type='raw'),
    sport=dict(type='raw'),
    src=dict(type='str'),
    dst=dict(type='str'),
    iif=dict(type='str'),
    oif=dict(type='str'),
    direction=dict(type='str', default='inbound', choices=list(DIRECTIONS)),
    family=dict(type='str', choices=['ipv4', 'ipv6', 'both']),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    all=dict(type='bool', default=False),
    synproxy=dict(type='bool', default=False),
    synproxy_options=dict(type='dict', options=dict(
        mss=dict(type='int'),
        wscale=dict(type='int'),
        timestamp=dict(type='bool'),
        sack_perm=dict(type='bool'),
    )),
    connlimit=dict(type='int'),
)
# conntrack_notrack's options: the module's form and conntrack_harden's steps share them
NOTRACK_ARGSPEC = dict(
    rules=dict(type='list', elements='dict', default=[], options=NOTRACK_RULE_SPEC),
    exclusive=dict(type='bool', default=False),
    drop_invalid=dict(type='bool'),
)
NOTRACK_ARGSPEC.update(PERSIST_ARGSPEC)
NOTRACK_ARGSPEC.update(NAMESPACE_ARGSPEC)

SYNPROXY_DEFAULTS = dict(mss=1460, wscale=7, timestamp=False, sack_perm=True)
MATCH_OPTIONS = ('proto', 'dport', 'sport', 'src', 'dst', 'iif', 'oif')


# --- validating and rendering notrack rules -------------------------------------------------------

def _ports(value, option, index):
    """Normalise a port option: int, 'N', 'N-M', or a list of those -> sorted list of strings."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    name = 'rules[%d].%s' % (index, option)
    out = []
    for item in items:
        if isinstance(item, (list, dict)):
            raise ConntrackError('%s %r is not a port, a list of ports or a range N-M' % (name, item), option='rules')
        low, high = parse_port_spec(item, name)
        out.append(str(low) if low == high else '%d-%d' % (low, high))
    if not out:
        raise ConntrackError('%s is an empty list' % name, option='rules')
    return sorted(set(out), key=lambda p: int(p.split('-')[0]))


def _net(value, option, index):
    return parse_network(value, 'rules[%d].%s' % (index, option))


def _iface(value, option, index):
    return check_ifname(value, 'rules[%d].%s' % (index, option))


def normalize_notrack(rule, index):
    """Validate one notrack rule (already filled with the sub-spec defaults) -> canonical dict."""
    proto = rule.get('proto')
    if proto is not None:
        proto = str(proto).lower()
        if proto not in PROTOS:
            raise ConntrackError('rules[%d].proto %r is not supported: use one of %s' % (index, proto, ', '.join(PROTOS)),
                                 option='rules')
    dport = _ports(rule.get('dport'), 'dport', index)
    sport = _ports(rule.get('sport'), 'sport', index)
    if (dport or sport) and proto not in PORT_PROTO_NAMES:
        raise ConntrackError('rules[%d]: ports need proto set to one of %s' % (index, ', '.join(PORT_PROTO_NAMES)),
                             option='rules')
    family = rule.get('family') or 'both'
    nets = {}
    for option in ('src', 'dst'):
        if rule.get(option) not in (None, ''):
            net = _net(rule[option], option, index)
            fam = 'ipv4' if net.version == 4 else 'ipv6'
            if family != 'both' and fam != family:
                raise ConntrackError('rules[%d].%s %s is an %s address but family is %s' % (
                    index, option, rule[option], 'IPv4' if fam == 'ipv4' else 'IPv6', family), option='rules')
            family = fam
            nets[option] = str(net)
    if proto == 'icmp' and family == 'ipv6' or proto == 'icmpv6' and family == 'ipv4':
        raise ConntrackError('rules[%d]: proto %s does not exist in family %s' % (index, proto, family), option='rules')
    direction = rule.get('direction') or 'inbound'
    iif = _iface(rule.get('iif'), 'iif', index)
    oif = _iface(rule.get('oif'), 'oif', index)
    if iif and direction != 'inbound':
        raise ConntrackError('rules[%d].iif matches inbound traffic only: set direction inbound or drop iif' % index,
                             option='rules')
    if oif and direction != 'output':
        raise ConntrackError('rules[%d].oif matches locally generated traffic only: set direction output or drop oif'
                             % index, option='rules')
    canon = dict(proto=proto, dport=dport, sport=sport, family=family, direction=direction, iif=iif, oif=oif, **nets)
    if rule.get('synproxy'):
        if proto != 'tcp':
            raise ConntrackError('rules[%d].synproxy needs proto tcp (SYNPROXY answers TCP SYNs only)' % index,
                                 option='rules')
        if direction != 'inbound':
            raise ConntrackError('rules[%d].synproxy protects inbound traffic only: set direction inbound' % index,
                                 option='rules')
        opts = dict(SYNPROXY_DEFAULTS)
        given = rule.get('synproxy_options') or {}
        for key, value in given.items():
            if key not in SYNPROXY_DEFAULTS:
                raise ConntrackError('rules[%d].synproxy_options.%s is unknown: use mss, wscale, timestamp, sack_perm'
                                     % (index, key), option='rules')
            if value is not None:
                opts[key] = value
        opts['mss'] = parse_int(opts['mss'], 'rules[%d].synproxy_options.mss' % index, 536, 65535, 'MSS values')
        opts['wscale'] = parse_int(opts['wscale'], 'rules[%d].synproxy_options.wscale' % index, 0, 14,
                                   'window scale shifts')
        for key in ('timestamp', 'sack_perm'):
            if not isinstance(opts[key], bool):
                raise ConntrackError('rules[%d].synproxy_options.%s %r is not a boolean (true or false)'
                                     % (index, key, opts[key]), option='rules')
        canon['synproxy'] = opts
    elif rule.get('synproxy_options'):
        raise ConntrackError('rules[%d].synproxy_options needs synproxy: true' % index, option='rules')
    if rule.get('connlimit') is not None:
        connlimit = parse_int(rule['connlimit'], 'rules[%d].connlimit' % index, 1, U32_MAX, 'connection limits')
        if direction != 'inbound':
            raise ConntrackError('rules[%d].connlimit limits inbound connections: set direction inbound' % index,
                                 option='rules')
        canon['connlimit'] = connlimit
    matches = [key for key in MATCH_OPTIONS if canon.get(key)]
    if rule.get('all'):
        if matches:
            raise ConntrackError('rules[%d].all: true matches all traffic and cannot be combined with %s: remove '
                                 'all, or the matches' % (index, ', '.join(matches)), option='rules')
        canon['all'] = True
    elif not matches:
        raise ConntrackError('rules[%d] has no match (proto, dport, sport, src, dst, iif or oif): it would exempt all '
                             '%s traffic from tracking. Give a match, or all: true in the rule to really mean all'
                             % (index, 'IPv4' if family == 'ipv4' else 'IPv6' if family == 'ipv6' else 'IPv4 and '
                                'IPv6'), option='rules')
    return dict((k, v) for k, v in canon.items() if v is not None)


def rule_id(canon):
    return hashlib.sha1(json.dumps(canon, sort_keys=True).encode()).hexdigest()[:12]


def _portset(ports):
    return ports[0] if len(ports) == 1 else '{ %s }' % ', '.join(ports)


def _matches(canon, chain):
    parts = []
    fam = canon['family']
    if fam != 'both' and not canon.get('src') and not canon.get('dst'):
        parts.append('meta nfproto %s' % fam)
    if chain == 'prerouting' and canon.get('iif'):
        parts.append('iifname "%s"' % canon['iif'])
    if chain == 'input' and canon.get('iif'):
        parts.append('iifname "%s"' % canon['iif'])
    if chain == 'output' and canon.get('oif'):
        parts.append('oifname "%s"' % canon['oif'])
    for option, word in (('src', 'saddr'), ('dst', 'daddr')):
        if canon.get(option):
            parts.append('%s %s %s' % ('ip' if fam == 'ipv4' else 'ip6', word, canon[option]))
    proto = canon.get('proto')
    if proto and not canon.get('sport') and not canon.get('dport'):
        parts.append('meta l4proto %s' % proto)
    if canon.get('sport'):
        parts.append('%s sport %s' % (proto, _portset(canon['sport'])))
    if canon.get('dport'):
        parts.append('%s dport %s' % (proto, _portset(canon['dport'])))
    return parts


def render_notrack(canon, rid):
    """{chain: [lines]} and {set name: block} for one notrack rule."""
    tag = 'comment "nc:notrack:%s"' % rid
    lines = dict((name, []) for name, _hook in CHAINS)
    blocks = {}
    chains = {'inbound': ['prerouting'], 'output': ['output'], 'both': ['prerouting', 'output']}[canon['direction']]
    for chain in chains:
        parts = _matches(canon, chain)
        if canon.get('synproxy'):
            parts.append('tcp flags syn / fin,syn,rst,ack')
        lines[chain].append(' '.join(parts + ['notrack', tag]))
    if canon.get('connlimit'):
        families = ['ipv4', 'ipv6'] if canon['family'] == 'both' else [canon['family']]
        for fam in families:
            name = 'cl%s_%s' % ('4' if fam == 'ipv4' else '6', rid)
            blocks[name] = '\tset %s {\n\t\ttype %s\n\t\tflags dynamic\n\t}' % (
                name, 'ipv4_addr' if fam == 'ipv4' else 'ipv6_addr')
            parts = _matches(canon, 'input')
            reject = 'reject with tcp reset' if canon.get('proto') == 'tcp' else 'drop'
            lines['input'].append(' '.join(parts + ['ct state new add @%s { %s saddr ct count over %d }' % (
                name, 'ip' if fam == 'ipv4' else 'ip6', canon['connlimit']), reject, tag]))
    if canon.get('synproxy'):
        opts = canon['synproxy']
        words = ['synproxy', 'mss', str(opts['mss']), 'wscale', str(opts['wscale'])]
        if opts['timestamp']:
            words.append('timestamp')
        if opts['sack_perm']:
            words.append('sack-perm')
        lines['input'].append(' '.join(_matches(canon, 'input') + ['ct state invalid,untracked'] + words + [tag]))
    return lines, blocks


def drop_invalid_line(canon, rid):
    """The invalid-state drop of one SYNPROXY rule: scoped to that rule's matches, so no other traffic is ever
    dropped by a rule of ours (a flushed or expired entry of another port costs its connection nothing)."""
    return ' '.join(_matches(canon, 'input') + ['ct state invalid drop', 'comment "nc:drop_invalid:%s"' % rid])


def plan_runner(plan_class):
    """The work function of conntrack_notrack and conntrack_helper for ``_runner.run``: plan inside the namespace
    (which decides whether persisting is possible), then apply."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils._netns import in_initial_namespace

    def work(params, check_mode):
        result, warnings = plan_class(params, initial_namespace=in_initial_namespace()).run(check_mode)
        result['warnings'] = warnings
        return result
    return work


# --- the notrack desired state ----------------------------------------------------------------------

class NotrackPlan(object):
    """Compute and apply the owned table for a conntrack_notrack task."""

    def __init__(self, params, initial_namespace=True):
        self.params = params
        self.initial_namespace = initial_namespace
        self.present = []  # [(id, canon)]
        self.absent = []
        seen = {}
        for index, rule in enumerate(params.get('rules') or []):
            canon = normalize_notrack(rule, index)
            rid = rule_id(canon)
            state = rule.get('state') or 'present'
            if rid in seen:
                if seen[rid][0] != state:
                    raise ConntrackError('rules[%d] asks for the same rule as rules[%d] with the opposite state: a '
                                         'rule cannot be both present and absent' % (index, seen[rid][1]),
                                         option='rules')
                continue
            seen[rid] = (state, index)
            (self.present if state == 'present' else self.absent).append((rid, canon))
        check_persist(params, initial_namespace)
        self.warnings = []
        self.before_text = None  # the table as run() found it
        self.applied = False  # run() replaced the table in the kernel
        self.files = FileChanges()  # the persisted files run() wrote or removed

    def undo(self):
        """Put back what a successful ``run()`` changed (a later step of the same task failed): the table as it
        was, then the persisted files. Returns what could not be put back ([] when all was)."""
        failed = undo_table(self.before_text, self.applied, self.files)
        self.applied = False
        return failed

    def run(self, check_mode):
        current_text = self.before_text = read_table()
        current = parse_table(current_text)
        params = self.params
        have = current.ids('notrack')
        want_new = dict(self.present)
        if params.get('exclusive'):
            keep = set()
        else:
            keep = have - set(rid for rid, _c in self.absent)
        desired = keep | set(want_new)
        drop_invalid = params.get('drop_invalid')
        if drop_invalid is None:
            drop_invalid = current.has('drop_invalid')  # keep what the table has

        chain_lines = dict((name, []) for name, _hook in CHAINS)
        blocks = {}
        # what is not ours to decide here (other kinds, e.g. helpers) is carried over verbatim
        for name, _hook in CHAINS:
            for kind, rid, line in current.lines[name]:
                if kind not in ('notrack', 'drop_invalid'):
                    chain_lines[name].append(line)
        for name, block in current.blocks.items():
            if not name.startswith('cl'):
                blocks[name] = block
        drops = []
        for rid in sorted(desired):
            if rid in want_new:
                lines, sets = render_notrack(want_new[rid], rid)
                for chain, body in lines.items():
                    chain_lines[chain].extend(body)
                blocks.update(sets)
                if drop_invalid and want_new[rid].get('synproxy'):
                    drops.append(drop_invalid_line(want_new[rid], rid))
            else:
                for name, _hook in CHAINS:
                    chain_lines[name].extend(line for kind, r, line in current.lines[name]
                                             if kind == 'notrack' and r == rid)
                for name, block in current.blocks.items():
                    if name.endswith('_' + rid):
                        blocks[name] = block
                if drop_invalid:
                    drops.extend(filter(None, (drop_invalid_of(line) for kind, r, line in current.lines['input']
                                               if kind == 'notrack' and r == rid)))
        # in the input chain: connection limits, then SYNPROXY, then the scoped invalid drops
        chain_lines['input'].sort(key=lambda line: 0 if ' ct count over ' in line else 1)
        chain_lines['input'].extend(drops)
        if params.get('drop_invalid') and not drops:
            self.warnings.append('drop_invalid applies to the traffic of SYNPROXY rules only (SYNPROXY needs it '
                                 'there) and no rule of the table has synproxy: true, so nothing is dropped')

        empty = not any(chain_lines.values()) and not blocks
        after_text = None if empty else render_table(chain_lines, blocks)
        have_drops = set(rid or '(unscoped)' for kind, rid, _line in current.lines['input'] if kind == 'drop_invalid')
        want_drops = set(COMMENT_RE.search(line).group(2) for line in drops)
        changed = (desired != have) or (have_drops != want_drops)
        if current_text is None and empty:
            changed = False

        result = dict(changed=changed, table='%s %s' % (TABLE_FAMILY, TABLE_NAME),
                      rules=[dict(want_new[rid], id=rid) for rid in sorted(want_new)],
                      kept=sorted(keep), removed=sorted(have - desired), drop_invalid=bool(drops))
        self.applied = apply_table(result, params, current_text, after_text, changed, check_mode, self.files)
        result['in_force'] = None if check_mode else self.in_force(desired, want_drops, None if changed else current)
        return result, self.warnings

    @staticmethod
    def in_force(desired, want_drops, table=None):
        """True when the kernel holds exactly the rules of ours (and scoped drops) asked for: the table is read back
        after a change (``table``: what was read before, when nothing changed)."""
        if table is None:
            table = parse_table(read_table())
        drops = set(rid or '(unscoped)' for kind, rid, _line in table.lines['input'] if kind == 'drop_invalid')
        return table.ids('notrack') == desired and drops == want_drops


# --- helpers --------------------------------------------------------------------------------------

# nft helper type, protocols it works with, default port, IPv4 only
HELPERS = {
    'ftp': ('ftp', ('tcp',), 21, False),
    'tftp': ('tftp', ('udp',), 69, False),
    'sip': ('sip', ('udp', 'tcp'), 5060, False),
    'irc': ('irc', ('tcp',), 6667, False),
    'h323-ras': ('RAS', ('udp',), 1719, False),
    'h323-q931': ('Q.931', ('tcp',), 1720, False),
    'pptp': ('pptp', ('tcp',), 1723, True),
    'amanda': ('amanda', ('udp',), 10080, False),
    'sane': ('sane', ('tcp',), 6566, False),
    'snmp': ('snmp', ('udp',), 161, True),
    'netbios-ns': ('netbios-ns', ('udp',), 137, True),
}
HELPER_ALIASES = {'h323': 'h323-q931', 'q.931': 'h323-q931', 'ras': 'h323-ras', 'netbios_ns': 'netbios-ns'}


def kernel_helpers():
    """Conntrack helpers this kernel has (built in or loaded), from /sys/module."""
    found = []
    for name, (_type, _protos, _port, _v4) in sorted(HELPERS.items()):
        module = 'nf_conntrack_' + name.split('-')[0].replace('-', '_')
        if name == 'netbios-ns':
            module = 'nf_conntrack_netbios_ns'
        if os.path.isdir('/sys/module/' + module):
            found.append(name)
    return found


def normalize_helper(params):
    name = str(params.get('helper') or '').strip().lower()
    name = HELPER_ALIASES.get(name, name)
    if name not in HELPERS:
        raise ConntrackError('helper %r is unknown: use one of %s' % (params.get('helper'), ', '.join(sorted(HELPERS))),
                             option='helper')
    nft_type, protos, port, v4_only = HELPERS[name]
    proto = str(params.get('proto') or protos[0]).lower()
    if proto not in protos:
        raise ConntrackError('helper %s works over %s, not %s' % (name, ' or '.join(protos), proto), option='proto')
    rule = dict(proto=proto, dport=params.get('ports') if params.get('ports') not in (None, []) else port,
                src=params.get('src'), dst=params.get('dst'), family=params.get('family') or 'both')
    try:
        canon = normalize_notrack(rule, 0)
    except ConntrackError as exc:  # speak in this module's option names
        raise ConntrackError(exc.msg.replace('rules[0].dport', 'ports').replace('rules[0].', '')
                             .replace('rules[0]: ', ''), option=exc.option)
    if v4_only:
        if canon['family'] == 'ipv6':
            raise ConntrackError('helper %s exists for IPv4 only' % name, option='family')
        canon['family'] = 'ipv4'
    canon['helper'] = name
    canon.pop('direction', None)
    return canon


def render_helper(canon, rid):
    nft_type = HELPERS[canon['helper']][0]
    obj = 'nc_%s' % rid
    l3 = 'ip' if canon['family'] == 'ipv4' else ('ip6' if canon['family'] == 'ipv6' else 'inet')
    block = '\tct helper %s {\n\t\ttype "%s" protocol %s\n\t\tl3proto %s\n\t}' % (obj, nft_type, canon['proto'], l3)
    tag = 'comment "nc:helper:%s"' % rid
    match = dict(canon, direction='inbound')
    lines = {'helpers_in': [' '.join(_matches(match, 'helpers_in') + ['ct helper set "%s"' % obj, tag])],
             'helpers_out': [' '.join(_matches(match, 'helpers_out') + ['ct helper set "%s"' % obj, tag])]}
    return lines, {obj: block}


class HelperPlan(object):
    """Attach (or detach) one kernel helper to traffic in the owned table."""

    def __init__(self, params, initial_namespace=True):
        self.params = params
        self.canon = normalize_helper(params)
        self.rid = rule_id(self.canon)
        check_persist(params, initial_namespace)
        self.warnings = []

    def run(self, check_mode):
        current_text = read_table()
        current = parse_table(current_text)
        have = current.ids('helper')
        present = self.params.get('state', 'present') == 'present'
        desired = (have | {self.rid}) if present else (have - {self.rid})
        chain_lines = dict((name, []) for name, _hook in CHAINS)
        blocks = {}
        for name, _hook in CHAINS:
            for kind, rid, line in current.lines[name]:
                if kind != 'helper' or rid in desired:
                    chain_lines[name].append(line)
        for name, block in current.blocks.items():
            if not name.startswith('nc_') or name[3:] in desired:
                blocks[name] = block
        if present and self.rid not in have:
            lines, objs = render_helper(self.canon, self.rid)
            for chain, body in lines.items():
                chain_lines[chain].extend(body)
            blocks.update(objs)
        empty = not any(chain_lines.values()) and not blocks
        after_text = None if empty else render_table(chain_lines, blocks)
        changed = desired != have
        result = dict(changed=changed, table='%s %s' % (TABLE_FAMILY, TABLE_NAME),
                      helper=dict(self.canon, id=self.rid, object='nc_%s' % self.rid),
                      kernel_helpers=kernel_helpers())
        auto = read_file('/proc/sys/net/netfilter/nf_conntrack_helper')
        result['helper_assignment'] = 'automatic' if auto and auto.strip() == '1' else 'explicit'
        if result['helper_assignment'] == 'automatic':
            self.warnings.append('this kernel still assigns helpers automatically (net.netfilter.nf_conntrack_helper=1):'
                                 ' set it to 0 (conntrack_sysctl name=helper value=0) so only explicit rules apply')
        if present and self.canon['helper'] not in result['kernel_helpers']:
            self.warnings.append('the %s helper is not loaded in this kernel (no /sys/module/nf_conntrack_%s): '
                                 'nft loads it on first use where it is a module' % (
                                     self.canon['helper'], self.canon['helper'].split('-')[0].replace('-', '_')))
        apply_table(result, self.params, current_text, after_text, changed, check_mode)
        return result, self.warnings
