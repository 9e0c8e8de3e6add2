# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ctnetlink transport: the Connection (requests, dumps, statistics) and the dump receivers.

Replies are streamed, a datagram at a time, so a table of 10^5-10^6 entries can be listed, summarised or
filtered without holding it: ``Connection.dump_batches`` hands every datagram to a batch decoder of
``_ctlayout``. A receiver takes the kernel's side of a dump to another CPU: the kernel fills each dump
datagram inside recv(), so a child process receiving (and, with ``share``, decoding every other datagram)
overlaps the kernel's walk of the table with the decoding here; where fork() is not safe, a thread
receives instead. pyroute2's import (~0.3 s, ~30 MB) is kept off these paths: the codec needs only the
standard library.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import marshal
import os
import signal
import socket
import struct
import traceback

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nlwire import (
    IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_GET_CTRZERO, IPCTNL_MSG_CT_GET_STATS, IPCTNL_MSG_CT_GET_STATS_CPU,
    IPCTNL_MSG_EXP_GET, IPCTNL_MSG_EXP_GET_STATS_CPU, NETLINK_EXT_ACK, NETLINK_NETFILTER, NFGEN,
    NFNETLINK_V0, NFNL_MSG_MIN, NFNL_SUBSYS_CTNETLINK, NFNL_SUBSYS_CTNETLINK_EXP, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST, SOL_NETLINK, NetlinkError, ends, iter_messages, nfnl_message, receive_error)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctvocab import (
    CTA_STATS_EXP_NAMES, CTA_STATS_GLOBAL_NAMES, CTA_STATS_NAMES, STATS_KEYS)
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctcodec import decode_expect, decode_stats
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctlayout import batch_dict, plain_batch

SO_RCVBUFFORCE = getattr(socket, 'SO_RCVBUFFORCE', 33)  # SO_RCVBUF beyond net.core.rmem_max (needs root)


class Connection(object):
    """A ctnetlink socket in the current network namespace.

    One request at a time; replies are streamed. Use as a context manager.
    """

    RCVBUF = 4 << 20
    CHUNK = 1 << 20

    def __init__(self):
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            if exc.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
                raise ConntrackError('this kernel has no nfnetlink (netfilter netlink) support: '
                                     'conntrack over netlink is not available')
            raise ConntrackError('cannot open a netfilter netlink socket: %s' % exc.strerror)
        self.sock.bind((0, 0))
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):  # the forced size (root) first, then the capped one
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, self.RCVBUF)
                break
            except OSError:
                continue
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        self.seq = int.from_bytes(os.urandom(2), 'big')
        self.buf = bytearray(self.CHUNK)
        self.view = memoryview(self.buf)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # requests --------------------------------------------------------------------------------
    def message(self, subsys, msg, flags, family=0, version=NFNETLINK_V0, attrs=b''):
        """Encode one nfnetlink message with the next sequence number; return (bytes, seq)."""
        self.seq = (self.seq + 1) & 0xffffffff
        return nfnl_message(subsys, msg, flags, self.seq, family, version, attrs), self.seq

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConntrackError('cannot send a netlink request: %s' % exc.strerror)

    def _recv(self):
        try:
            return self.sock.recv_into(self.buf, self.CHUNK)
        except OSError as exc:
            raise receive_error(exc.errno)

    def messages(self, seq, flags=NLM_F_REQUEST | NLM_F_DUMP):
        """Yield (msg_type, family, buffer, payload_offset, end) for every reply to ``seq``.

        ``flags`` are those of the request: a dump ends at NLMSG_DONE, a request with NLM_F_ACK at
        its ACK, any other request after its one reply (the kernel may flag that single reply
        NLM_F_MULTI without a DONE, as it does for IPCTNL_MSG_CT_GET_STATS). Errors raise
        NetlinkError with the errno (ENOENT included: callers decide whether it is normal).
        """
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        ack = flags & NLM_F_ACK
        buf = self.buf
        while True:
            n = self._recv()
            for mtype, _flags, mseq, start, end, code in iter_messages(buf, n):
                if mseq != seq:
                    continue
                if code is not None:
                    if code:
                        raise NetlinkError(code)
                    return  # DONE, or the ACK
                if mtype >= NFNL_MSG_MIN:
                    yield mtype, buf[start], buf, start + NFGEN.size, end
                    if not dump and not ack:
                        return

    def request(self, subsys, msg, flags, family=0, version=NFNETLINK_V0, attrs=b'', action='request'):
        """Send one request and return the list of decoded raw replies (for small answers)."""
        data, seq = self.message(subsys, msg, flags, family, version, attrs)
        self.send(data)
        try:
            return [(mtype, fam, bytes(buf[poff:end])) for mtype, fam, buf, poff, end in self.messages(seq, flags)]
        except NetlinkError as exc:
            raise NetlinkError(exc.errno, action)

    # dumps ---------------------------------------------------------------------------------
    def dump(self, family=0, attrs=b'', zero=False, decode=None, threaded=False):
        """Stream the conntrack table (or the part the kernel-side filter in ``attrs`` lets through): the entry
        dicts (``decode_ct``'s), or ``decode(buf, payload_offset, end, family)`` of every entry."""
        batch = batch_dict if decode is None else plain_batch(decode)
        for items in self.dump_batches(family, attrs, zero, batch, threaded):
            yield from items

    def dump_batches(self, family=0, attrs=b'', zero=False, batch=None, threaded=False, share=False, msg=None):
        """Stream the table as lists, one per datagram, of what the batch decoder ``batch`` (``batch_json``,
        ``batch_brief``, ``batch_dict`` (the default), ``plain_batch(decode)``) makes of its entries.

        ``threaded``: receive in a second process (or thread). The kernel fills each dump datagram inside
        recv(), so the kernel's walk of the table overlaps with the decoding here. ``share``: the receiver
        process decodes every other datagram too (only for a batch decoder without side effects whose items
        are plain data, such as ``batch_json``, ``batch_brief``, ``batch_dict``). ``msg``: another dump of
        conntrack entries (IPCTNL_MSG_CT_GET_DYING, IPCTNL_MSG_CT_GET_UNCONFIRMED: the dying and unconfirmed lists).
        """
        if msg is None:
            msg = IPCTNL_MSG_CT_GET_CTRZERO if zero else IPCTNL_MSG_CT_GET
        data, seq = self.message(NFNL_SUBSYS_CTNETLINK, msg, NLM_F_REQUEST | NLM_F_DUMP, family, NFNETLINK_V0, attrs)
        self.send(data)
        batch = batch or batch_dict
        datagrams = _receiver(self, seq, batch if share else None) if threaded else None
        try:
            while True:
                if datagrams is None:
                    buf = self.buf
                    n = self._recv()
                else:
                    buf, n = datagrams.next()
                    if isinstance(buf, (Decoded, Joined)):  # decoded by the receiver process; n: the batch's code
                        if getattr(buf, 'entries', len(buf)):
                            yield buf
                        if n is not None:
                            if n:
                                raise NetlinkError(n)
                            return
                        continue
                items = []
                code = batch(buf, n, seq, items)
                if datagrams is not None:
                    datagrams.release(buf)
                if items:
                    yield items
                if code is not None:
                    if code:
                        raise NetlinkError(code)
                    return
        except NetlinkError as exc:
            if exc.errno == errno.EOPNOTSUPP and attrs:
                raise ConntrackError('this kernel cannot filter conntrack dumps by these fields '
                                     '(needs Linux 5.8+ for tuple filters): %s' % exc.msg)
            raise NetlinkError(exc.errno, 'listing the conntrack table')
        finally:
            if datagrams is not None:
                datagrams.stop()

    def dump_expect(self, family=0):
        data, seq = self.message(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET, NLM_F_REQUEST | NLM_F_DUMP, family)
        self.send(data)
        try:
            for _mtype, fam, buf, poff, end in self.messages(seq):
                yield decode_expect(buf, poff, end, fam)
        except NetlinkError as exc:
            raise NetlinkError(exc.errno, 'listing the expectation table')

    def stats_cpu(self):
        """Per-CPU conntrack statistics (conntrack -S), as a list of dicts with a ``cpu`` key."""
        replies = self.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP,
                               action='reading conntrack statistics')
        out = []
        for _mtype, _fam, payload in replies:
            stats = dict((key, 0) for key in STATS_KEYS)
            stats.update(decode_stats(payload, 0, len(payload), CTA_STATS_NAMES))
            out.append(stats)
        # res_id carries the CPU number, but we dropped it with the header; CPUs come in order
        for cpu, stats in enumerate(out):
            stats['cpu'] = cpu
        return out

    def stats_global(self):
        """Entry count and limit as the kernel reports them (conntrack -C)."""
        replies = self.request(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST,
                               action='reading the conntrack count')
        for _mtype, _fam, payload in replies:
            return decode_stats(payload, 0, len(payload), CTA_STATS_GLOBAL_NAMES)
        return {}

    def stats_expect_cpu(self):
        replies = self.request(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET_STATS_CPU, NLM_F_REQUEST | NLM_F_DUMP,
                               action='reading expectation statistics')
        return [decode_stats(payload, 0, len(payload), CTA_STATS_EXP_NAMES) for _m, _f, payload in replies]


# --- receivers ------------------------------------------------------------------------------------

class _Receiver(object):
    """Receives the datagrams of one dump in a second thread, into a small ring of buffers.

    ``next()`` returns (buffer, length); the caller hands the buffer back with ``release()`` once it
    has decoded it. The thread stops by itself after the datagram that ends the dump (DONE or an
    error for ``seq``), or when ``stop()`` is called.
    """

    RING = 8
    WAIT = 0.2  # seconds between looks at ``stopping`` while no buffer is free
    JOIN = 1.0  # seconds ``stop()`` waits for the thread

    def __init__(self, conn, seq):
        import queue
        import threading

        self.conn = conn
        self.seq = seq
        self.free = queue.Queue()
        self.full = queue.Queue()
        for _i in range(self.RING):
            self.free.put(bytearray(conn.CHUNK))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name='ctnetlink-recv')
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        import queue

        sock = self.conn.sock
        chunk = self.conn.CHUNK
        while not self.stopping.is_set():
            try:
                buf = self.free.get(timeout=self.WAIT)
            except queue.Empty:
                continue
            if self.stopping.is_set():
                return
            try:
                n = sock.recv_into(buf, chunk)
            except Exception as exc:  # pylint: disable=broad-except
                # handed to the consumer, which raises it: a dead reader must not leave it waiting
                self.full.put((exc, 0))
                return
            self.full.put((buf, n))
            if ends(buf, n, self.seq):
                return

    def next(self):
        buf, n = self.full.get()
        if isinstance(buf, OSError):
            raise receive_error(buf.errno)
        if isinstance(buf, Exception):
            raise buf
        return buf, n

    def release(self, buf):
        self.free.put(buf)

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            # a buffer for a thread waiting for one; a thread inside recv() ends with the dump
            self.free.put(bytearray(0))
            self.thread.join(self.JOIN)


class Decoded(list):
    """Items a receiver process decoded itself (see _ProcessReceiver)."""


class Joined(list):
    """JSON texts a receiver process decoded and joined with ', ' (``[text]``); ``entries`` says how many."""

    def __init__(self, text, entries):
        super(Joined, self).__init__((text,))
        self.entries = entries


def _failure_text(exc):
    """What the parent reports of the exception that ended a receiver process."""
    if isinstance(exc, ConntrackError):
        return exc.msg
    text = '%s: %s' % (type(exc).__name__, exc)
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += ' (at %s:%d in %s)' % (os.path.basename(frames[-1].filename), frames[-1].lineno, frames[-1].name)
    return text


class _ProcessReceiver(object):
    """Receives the datagrams of one dump in a child process and hands them over through a pipe.

    The kernel builds each dump datagram inside recv(); in a child process that work runs on another
    CPU while this process decodes, with no lock between the two (a receiving thread would need the
    GIL after every datagram). The child copies each datagram, prefixed with its length, into the pipe
    and ends after the one that ends the dump. ``next()`` returns (datagram, length).

    ``share``: a batch decoder without side effects whose items are plain data (str, bytes, int, tuple,
    dict, list, None). The child then decodes every other datagram itself and sends the items (marshal)
    instead of the bytes (JSON texts, of a batch decoder whose ``texts`` is true, joined into one: a
    ``Joined``), so both CPUs decode; ``next()`` returns (``Decoded`` items or ``Joined``, code) for those,
    ``code`` being what the batch decoder returned.

    The pipe carries records: a header (``_HDR``), then ``length`` bytes. A child that fails sends the
    text of its exception (KIND_FAILED), which the parent raises.
    """

    # the child decodes one datagram in SHARE_EVERY: it also does the kernel's work (inside recv())
    SHARE_EVERY = 2
    _HDR = struct.Struct('=iiI')  # length (of the data that follows; -errno for KIND_ERRNO), kind, code
    KIND_BYTES, KIND_ITEMS, KIND_TEXTS = 0, 1, 2  # a datagram; marshalled items; KIND_TEXTS + n: n joined texts
    KIND_ERRNO, KIND_FAILED = -1, -2  # recv() failed (no data); the child failed (data: the exception's text)
    _NO_CODE = 0xffffffff  # the batch decoder returned None: the dump goes on
    PIPE_SIZE = 1 << 20  # fewer wake-ups (F_SETPIPE_SZ, best effort)
    READ_SIZE = 1 << 20
    F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+)

    def __init__(self, conn, seq, share=None):
        self.seq = seq
        self.writing = False
        rfd, wfd = os.pipe()
        try:
            import fcntl
            fcntl.fcntl(wfd, getattr(fcntl, 'F_SETPIPE_SZ', self.F_SETPIPE_SZ), self.PIPE_SIZE)
        except (ImportError, OSError):
            pass
        try:
            pid = os.fork()
        except OSError:
            os.close(rfd)
            os.close(wfd)
            raise
        if pid == 0:  # the child: receive, forward, and leave without running any clean-up of the parent's
            code = 0
            try:
                os.close(rfd)
                self._forward(conn.sock, conn.CHUNK, wfd, share)
            except BaseException as exc:  # pylint: disable=broad-except
                code = 1
                self._report(wfd, exc)
            finally:
                os._exit(code)
        os.close(wfd)
        self.pid = pid
        self.rfd = rfd
        self.pending = bytearray()
        self.pos = 0

    def _send(self, wfd, *parts):
        """Write one record (its parts in order); ``writing`` is true until it is whole."""
        self.writing = True
        for part in parts:
            self._write_all(wfd, part)
        self.writing = False

    def _report(self, wfd, exc):
        """In the child: send the text of ``exc`` to the parent, unless a record is half written."""
        if self.writing:
            return
        try:
            data = _failure_text(exc).encode('utf-8', 'replace')
            self._send(wfd, self._HDR.pack(len(data), self.KIND_FAILED, self._NO_CODE) + data)
        except BaseException:  # pylint: disable=broad-except
            pass  # the parent then reports that the receiver ended early

    def _forward(self, sock, chunk, wfd, share):
        buf = bytearray(chunk)
        view = memoryview(buf)
        pack = self._HDR.pack
        send = self._send
        turn = 0
        while True:
            try:
                n = sock.recv_into(buf, chunk)
            except OSError as exc:
                send(wfd, pack(-exc.errno, self.KIND_ERRNO, self._NO_CODE))
                return
            turn += 1
            if share is not None and turn % self.SHARE_EVERY == 0:
                items = []
                code = share(buf, n, self.seq, items)
                if getattr(share, 'texts', False):  # JSON texts: joined here, written out as they are
                    data = ', '.join(items).encode('utf-8')
                    head = pack(len(data), self.KIND_TEXTS + len(items), self._NO_CODE if code is None else code)
                else:
                    data = marshal.dumps(items)
                    head = pack(len(data), self.KIND_ITEMS, self._NO_CODE if code is None else code)
                send(wfd, head + data)
                if code is not None:
                    return
            else:
                send(wfd, pack(n, self.KIND_BYTES, self._NO_CODE), view[:n])
                if ends(buf, n, self.seq):
                    return

    @staticmethod
    def _write_all(fd, data):
        data = memoryview(data)
        while data:
            data = data[os.write(fd, data):]

    def _fill(self, size):
        while len(self.pending) - self.pos < size:
            if self.pos > self.READ_SIZE:
                del self.pending[:self.pos]
                self.pos = 0
            data = os.read(self.rfd, self.READ_SIZE)
            if not data:
                raise ConntrackError('the netlink receiver process ended before the dump did%s' % self._reap())
            self.pending += data

    def _reap(self):
        """Wait for the ended child; how it ended, as text for a message."""
        pid, self.pid = self.pid, None
        if not pid:
            return ''
        _pid, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            return ' (killed by signal %d)' % os.WTERMSIG(status)
        return ' (exit status %d)' % os.WEXITSTATUS(status)

    def next(self):
        size = self._HDR.size
        self._fill(size)
        n, kind, code = self._HDR.unpack_from(self.pending, self.pos)
        self.pos += size
        if kind == self.KIND_ERRNO:
            raise receive_error(-n)
        self._fill(n)
        data = bytes(self.pending[self.pos:self.pos + n])
        self.pos += n
        code = None if code == self._NO_CODE else code
        if kind == self.KIND_FAILED:
            raise ConntrackError('the netlink receiver process failed: %s' % data.decode('utf-8', 'replace'))
        if kind == self.KIND_ITEMS:
            return Decoded(marshal.loads(data)), code
        if kind >= self.KIND_TEXTS:
            return Joined(data.decode('utf-8'), kind - self.KIND_TEXTS), code
        return data, n

    def release(self, buf):
        pass

    def stop(self):
        if self.rfd is not None:
            os.close(self.rfd)
            self.rfd = None
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)  # done already, or abandoned mid-dump: it has no more to do
            except OSError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None


def _receiver(conn, seq, share=None):
    """A receiver in a child process where fork() works and this process runs no other thread (a fork
    while another thread may hold a lock is unsafe); else in a thread (which shares no decoding)."""
    import threading

    if hasattr(os, 'fork') and threading.active_count() == 1:
        try:
            return _ProcessReceiver(conn, seq, share)
        except OSError:
            pass
    return _Receiver(conn, seq)
