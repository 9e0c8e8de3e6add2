"""Fill a conntrack table fast over netlink: ``create_many(conn, entries)``, for the lab, the tests and the benchmarks.

CT_NEW messages are packed into large datagrams without per-entry ACKs (the kernel then reports only
errors); a final ACKed request marks the end of its answers. Not part of the collection: modules create
one entry at a time (plugins/module_utils/_ctwrite.py), with an ACK.
"""
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_GET_STATS, IPCTNL_MSG_CT_NEW, NFNETLINK_V0, NFNL_SUBSYS_CTNETLINK, NLMSG_ERROR, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, iter_messages)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import af_of
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import encode_ct_attrs, encode_nat


def create_many(conn, entries, batch_bytes=1 << 16):
    """Create many entries (dicts for ``encode_ct_attrs``, plus ``nat_src``/``nat_dst`` for ``encode_nat``) on
    ``conn`` (a ``_cttransport.Connection``).

    Returns the number of failures."""
    failures = [0]
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
    sock = conn.sock

    def count(n, final_seq=None):
        """Count the errors in the datagram of ``n`` bytes; True when it holds the answer to ``final_seq``."""
        done = False
        for mtype, _flags, mseq, _start, _end, code in iter_messages(conn.buf, n):
            if mtype != NLMSG_ERROR:
                continue
            if mseq == final_seq:
                done = True
            elif code:
                failures[0] += 1
        return done

    def drain():
        sock.setblocking(False)
        try:
            while True:
                try:
                    n = sock.recv_into(conn.buf, conn.CHUNK)
                except (BlockingIOError, InterruptedError):
                    return
                count(n)
        finally:
            sock.setblocking(True)

    chunk = []
    size = 0
    for entry in entries:
        data, _seq = conn.message(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, flags, af_of(entry['family']),
                                  NFNETLINK_V0, encode_ct_attrs(entry) + (encode_nat(entry) if 'nat_src' in entry
                                                                          or 'nat_dst' in entry else b''))
        chunk.append(data)
        size += len(data)
        if size >= batch_bytes:
            conn.send(b''.join(chunk))
            chunk, size = [], 0
            drain()
    if chunk:
        conn.send(b''.join(chunk))
    # a final request with an ACK marks the end of the kernel's answers
    data, seq = conn.message(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST | NLM_F_ACK)
    conn.send(data)
    while not count(sock.recv_into(conn.buf, conn.CHUNK), seq):
        pass
    return failures[0]
