# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One entry at a time over ctnetlink: get, create, update and delete an entry, delete an expectation.

Each request asks for an ACK (the caller needs to know); the kernel's refusals become messages that say
what to check (``_explain``). Many entries at once are ``_ctselect``'s (and conntrack_flush's, ``_ctflush``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW, IPCTNL_MSG_EXP_DELETE, NFNETLINK_V0,
    NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_CTNETLINK_EXP, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
    NetlinkError, nla_be16, nla_be32)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    CTA_ID, CTA_MARK, CTA_MARK_MASK, CTA_STATUS, CTA_TIMEOUT, CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_ZONE, af_of)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import (
    LABEL_BYTES, TCP_FLAGS_CREATED, decode_ct, encode_ct_rest, encode_ct_tuples, encode_expect_identity, encode_labels,
    encode_nat, encode_protoinfo, encode_tuple)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import pack_tuples


def identity_attrs(ident):
    """CTA attributes naming one entry: its original tuple (or reply tuple) and zone.

    ``ident`` is a dict with ``family``, ``protonum``, ``direction`` ('orig' or 'reply'), ``tuple``
    (src, dst, ports or ICMP fields) and ``zone``.
    """
    tup = dict(ident['tuple'])
    tup['protonum'] = ident['protonum']
    atype = CTA_TUPLE_ORIG if ident.get('direction', 'orig') == 'orig' else CTA_TUPLE_REPLY
    attrs = encode_tuple(atype, ident['family'], tup)
    if ident.get('zone'):
        attrs += nla_be16(CTA_ZONE, ident['zone'])
    return attrs


def get_entry(conn, ident):
    """The entry ``ident`` names, decoded as conntrack_info shows it, or None when there is none."""
    try:
        replies = conn.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, NLM_F_REQUEST,
                               af_of(ident['family']), NFNETLINK_V0, identity_attrs(ident),
                               action='reading the entry')
    except NetlinkError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    for _mtype, family, payload in replies:
        return decode_ct(payload, 0, len(payload), family)
    return None


def create_attrs(entry):
    """The attributes of a CT_NEW creating ``entry`` (a flat entry dict for ``encode_ct_attrs``, plus
    ``nat_src``/``nat_dst`` dicts): the tuples packed by the fixed layouts where the entry has every field of
    one (``_ctlayout.pack_tuples``, byte for byte the codec's), by the codec otherwise."""
    packed = None if entry.get('tuple_zone') or entry.get('reply_tuple_zone') else pack_tuples(entry)
    return (packed or encode_ct_tuples(entry)) + encode_ct_rest(entry) + encode_nat(entry)


def create_entry(conn, entry):
    """CT_NEW with CREATE|EXCL and an ACK of ``entry`` (see ``create_attrs``)."""
    attrs = create_attrs(entry)
    try:
        conn.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW,
                     NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                     af_of(entry['family']), NFNETLINK_V0, attrs, action='creating the entry')
    except NetlinkError as exc:
        raise _explain(exc, 'creating the entry')


def update_entry(conn, ident, changes, state=None, protonum=None):
    """CT_NEW without CREATE and with an ACK of ``update_attrs(ident, changes, state, protonum)``."""
    attrs = update_attrs(ident, changes, state, protonum)
    try:
        conn.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK,
                     af_of(ident['family']), NFNETLINK_V0, attrs, action='updating the entry')
    except NetlinkError as exc:
        raise _explain(exc, 'updating the entry')


def update_attrs(ident, changes, state=None, protonum=None):
    """The attributes of a CT_NEW (without CREATE) updating the entry ``ident`` names: only the attributes in
    ``changes`` (``status`` value, ``timeout``, ``mark`` + ``mark_mask``, ``labels`` + ``labels_mask`` as ints), and
    with ``state`` the TCP/SCTP/DCCP state. A TCP state is sent with the window-tracking flags a created entry
    gets (as conntrack -U sends them): the kernel's window data does not fit a state set from outside. An update
    without a state leaves the protocol info, window tracking included, as the kernel keeps it."""
    attrs = identity_attrs(ident)
    if state is not None:
        attrs += encode_protoinfo(protonum, state, tcp_flags=TCP_FLAGS_CREATED)
    if 'status' in changes:
        attrs += nla_be32(CTA_STATUS, changes['status'])
    if 'timeout' in changes:
        attrs += nla_be32(CTA_TIMEOUT, changes['timeout'])
    if 'mark' in changes:
        attrs += nla_be32(CTA_MARK, changes['mark'])
        # ctnetlink applies CTA_MARK_MASK on update: new = (old & ~mask) | (mark & mask)
        attrs += nla_be32(CTA_MARK_MASK, changes.get('mark_mask', 0xffffffff))
    if 'labels' in changes:
        attrs += encode_labels(changes['labels'], changes.get('labels_mask', (1 << 8 * LABEL_BYTES) - 1))
    return attrs


def delete_entry(conn, ident, ct_id=None):
    """CT_DELETE of the entry ``ident`` names (and, with ``ct_id``, only if it still has that id).

    True when deleted, False when there was no such entry (ENOENT is not an error)."""
    return _delete(conn, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, ident['family'], delete_attrs(ident, ct_id),
                   'deleting the entry', explain=True)


def delete_attrs(ident, ct_id=None):
    """The attributes of a CT_DELETE of the entry ``ident`` names (only while it has the id ``ct_id``)."""
    attrs = identity_attrs(ident)
    if ct_id is not None:
        attrs += nla_be32(CTA_ID, ct_id)
    return attrs


def delete_expect(conn, exp):
    """EXP_DELETE of one expectation (a dict as ``Connection.dump_expect`` yields); False when it is gone."""
    return _delete(conn, NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE, exp['family'], encode_expect_identity(exp),
                   'deleting an expectation')


def _delete(conn, subsys, msg, family, attrs, action, explain=False):
    """One ACKed delete request: True when the kernel deleted, False on ENOENT (nothing to delete)."""
    try:
        conn.request(subsys, msg, NLM_F_REQUEST | NLM_F_ACK, af_of(family), NFNETLINK_V0, attrs, action=action)
    except NetlinkError as exc:
        if exc.errno == errno.ENOENT:
            return False
        if explain:
            raise _explain(exc, action)
        raise
    return True


_EXPLAIN = {
    errno.EEXIST: 'an entry with this tuple already exists in this zone (possibly with the tuples the other '
                  'way round: the reply tuple of one entry cannot be the original tuple of another)',
    errno.EBUSY: 'the kernel refused the entry; an entry being created must be CONFIRMED',
    errno.EINVAL: 'the kernel rejected the entry as invalid (check the tuple, the state for the protocol, '
                  'and that status flags the kernel manages, such as SRC_NAT/DST_NAT without NAT, are not set)',
    errno.ENOENT: 'there is no such entry (it may have expired in the meantime)',
    errno.EOPNOTSUPP: 'this kernel does not support the request (NAT needs nf_nat; labels need connlabel '
                      'support; helpers need the helper)',
    errno.ENOSPC: 'the conntrack table is full (nf_conntrack_max reached)',
}


def explain(exc, action):
    """The NetlinkError ``exc`` of ``action`` with a message saying what to check."""
    return _explain(exc, action)


def _explain(exc, action):
    text = _EXPLAIN.get(exc.errno)
    if text is None:
        return NetlinkError(exc.errno, action)
    err = NetlinkError(exc.errno, action)
    err.msg = '%s failed: %s (%s)' % (action, text, errno.errorcode.get(exc.errno, exc.errno))
    err.args = (err.msg,)
    return err
