# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the collection's nft table exists in this network namespace: one nf_tables GETTABLE request.

Private to the collection. conntrack_info reports it (``kernel.owned_nft_table``) so the synflood_guard role's
engine knows, from its one read, when a conntrack_notrack call would have nothing to remove. No nft process is
started; None means the kernel could not be asked (no nf_tables, no netlink).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import struct

from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    NETLINK_NETFILTER, NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR, nfnl_message, nla_str)

NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWTABLE = 0
NFT_MSG_GETTABLE = 1
NFTA_TABLE_NAME = 1
NFPROTO_INET = 1
_HDR = struct.Struct('=IHHII')


def table_exists(name, family=NFPROTO_INET, timeout=2.0):
    """True when the nft table ``name`` of ``family`` exists here, False when the kernel says it does not (ENOENT),
    None when it cannot be told."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except (OSError, AttributeError):
        return None
    try:
        sock.settimeout(timeout)
        sock.send(nfnl_message(NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE, NLM_F_REQUEST | NLM_F_ACK, 1, family=family,
                               attrs=nla_str(NFTA_TABLE_NAME, name)))
        found = False
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _flags, seq, _pid = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    return None
                if seq == 1 and mtype == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE:
                    found = True
                elif seq == 1 and mtype == NLMSG_ERROR:
                    code = -struct.unpack_from('=i', data, offset + _HDR.size)[0]
                    if code == 0:
                        return found
                    return False if code == errno.ENOENT else None
                offset += (length + 3) & ~3
    except (OSError, socket.timeout, struct.error):
        return None
    finally:
        sock.close()
