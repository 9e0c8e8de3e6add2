# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Classic BPF socket filters for the conntrack event socket: drop unwanted events in the kernel.

A listener that wants only some events would otherwise receive, copy and decode every one. For the simple
filters (``family``, ``proto``), ``event_program(flt)`` builds a classic BPF program that the kernel runs on
each event before queueing it: it reads the nfgenmsg family and the original tuple's protocol number at the
offsets of the fixed layouts (``_ctlayout.LAYOUTS``), after checking the attribute headers there. A message
of any other shape is let through, so the program only ever drops events the filter rejects; what it lets
through is still checked with ``Filter.match`` unless the fixed layout matched too (``exact``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import socket
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    NFNL_HDRLEN, NFNL_SUBSYS_CTNETLINK, NLA_F_NESTED, NLMSG_HDRLEN, hdr_be)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    AF_INET, AF_INET6, CTA_PROTO_NUM, CTA_TUPLE_IP, FAMILIES)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import LAYOUTS

SO_ATTACH_FILTER = getattr(socket, 'SO_ATTACH_FILTER', 26)
# classic BPF opcodes (linux/filter.h)
LD_B_ABS, LD_W_ABS, JEQ_K, RET_K = 0x30, 0x20, 0x15, 0x06
ACCEPT, DROP = 0xffffffff, 0
INSN = struct.Struct('=HBBI')  # struct sock_filter: code, jt, jf, k
# the filter options a program can express; any other filter option leaves the event to Filter.match
BPF_OPTIONS = frozenset(('family', 'proto'))
SUBSYS_AT = 5      # the high byte of the (little-endian) nlmsg_type: the nfnetlink subsystem
FAMILY_AT = NLMSG_HDRLEN  # nfgenmsg.nfgen_family


def _checks(af):
    """[(offset, 32-bit big-endian word)] that say an event of family ``af`` has the fixed layout's original
    tuple, and the offset of its protocol number."""
    lay = LAYOUTS[af, False, False]
    ip_len = lay.num_at - 12  # the CTA_TUPLE_IP attribute: tuple header 4, then it, proto header 4, num header 4
    return ([(NFNL_HDRLEN + 4, hdr_be(ip_len, CTA_TUPLE_IP | NLA_F_NESTED)),
             (NFNL_HDRLEN + lay.num_at - 4, hdr_be(5, CTA_PROTO_NUM))], NFNL_HDRLEN + lay.num_at)


def expressible(flt):
    """True when a program can select exactly what ``flt`` selects (for events of the fixed layouts)."""
    return bool(flt.given) and set(flt.given) <= BPF_OPTIONS and not flt.exclusions and not getattr(flt, 'any_of', None)


def event_program(flt):
    """The instructions [(code, jt, jf, k)] of a program keeping the events ``flt`` may select, or None when
    the filter has no family or protocol condition (nothing to drop in the kernel)."""
    family = FAMILIES.get(flt.family) if flt.family else None
    proto = flt.protonum
    if family is None and proto is None:
        return None
    # built as labelled blocks, then the jumps resolved: ('jeq', k, true label, false label)
    blocks = [('ldb', SUBSYS_AT), ('jeq', NFNL_SUBSYS_CTNETLINK, None, 'accept'), ('ldb', FAMILY_AT)]
    families = [family] if family is not None else [AF_INET, AF_INET6]
    if proto is None:
        blocks.append(('jeq', family, 'accept', 'drop'))
    else:
        for i, af in enumerate(families):
            last = i == len(families) - 1
            blocks.append(('jeq', af, 'af%d' % af, 'drop' if family is not None else ('accept' if last else None)))
        for af in families:
            checks, num_at = _checks(af)
            blocks.append(('label', 'af%d' % af))
            for offset, word in checks:
                blocks += [('ldw', offset), ('jeq', word, None, 'accept')]
            blocks += [('ldb', num_at), ('jeq', proto, 'accept', 'drop')]
    blocks += [('label', 'accept'), ('ret', ACCEPT), ('label', 'drop'), ('ret', DROP)]
    return _assemble(blocks)


def _assemble(blocks):
    labels = {}
    pos = 0
    for block in blocks:
        if block[0] == 'label':
            labels[block[1]] = pos
        else:
            pos += 1
    program = []
    for block in blocks:
        kind = block[0]
        if kind == 'label':
            continue
        here = len(program)
        if kind == 'ldb':
            program.append((LD_B_ABS, 0, 0, block[1]))
        elif kind == 'ldw':
            program.append((LD_W_ABS, 0, 0, block[1]))
        elif kind == 'ret':
            program.append((RET_K, 0, 0, block[1]))
        else:
            _kind, k, jt, jf = block
            program.append((JEQ_K, _jump(labels, jt, here), _jump(labels, jf, here), k))
    return program


def _jump(labels, label, here):
    """The relative jump from instruction ``here`` to ``label`` (None: the next instruction)."""
    if label is None:
        return 0
    offset = labels[label] - here - 1
    if not 0 <= offset <= 255:
        raise ValueError('BPF jump out of range')
    return offset


def attach(sock, program):
    """Attach ``program`` to ``sock`` (SO_ATTACH_FILTER). Raises ConntrackError when the kernel refuses it."""
    code = b''.join(INSN.pack(*insn) for insn in program)
    insns = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack('HL', len(program), ctypes.addressof(insns))  # struct sock_fprog: len, pointer
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as exc:
        raise ConntrackError('the kernel refused the event socket filter: %s' % exc.strerror)
