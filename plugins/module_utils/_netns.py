# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the current process inside a network namespace (the ``namespace`` option).

A module process is short-lived and single-threaded, so it switches its own
network namespace with setns(2) before it opens any netlink socket or reads
/proc/sys/net. /proc/net and /proc/sys/net then show the namespace's view.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import errno
import os

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = '/run/netns'


def namespace_path(namespace):
    """Map a ``namespace`` option value to a path of a network namespace file.

    A plain name is looked up under /run/netns (``ip netns`` names); a value with
    a slash is used as a path (``/proc/PID/ns/net``, a bind mount).
    """
    if namespace is None or namespace == '':
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7f for char in namespace):
        raise ConntrackError('namespace %r is not a valid name or path: it contains a control character (NUL, '
                             'newline, ...)' % namespace, option='namespace')
    if '/' in namespace:
        return namespace
    if namespace in ('.', '..'):
        raise ConntrackError("namespace %r is not a valid name" % namespace, option='namespace')
    return os.path.join(NETNS_RUN_DIR, namespace)


def _available():
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        return []


def _setns(fd):
    setns = getattr(os, 'setns', None)  # Python >= 3.12
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def enter_namespace(namespace):
    """Switch this process into ``namespace``; return the path entered, or None for no change."""
    path = namespace_path(namespace)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            names = _available()
            raise ConntrackError(
                "namespace %r does not exist (no %s); named namespaces on this host: %s"
                % (namespace, path, ', '.join(names) if names else 'none'), option='namespace')
        raise ConntrackError("cannot open namespace %r (%s): %s" % (namespace, path, exc.strerror),
                             option='namespace')
    try:
        _setns(fd)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise ConntrackError("%s is not a network namespace file" % path, option='namespace')
        if exc.errno == errno.EPERM:
            raise ConntrackError("entering namespace %r needs CAP_SYS_ADMIN (run as root / become: true)"
                                 % namespace, option='namespace')
        raise ConntrackError("cannot enter namespace %r: %s" % (namespace, exc.strerror), option='namespace')
    finally:
        os.close(fd)
    return path


def in_initial_namespace():
    """True when this process is in the initial network namespace (where global knobs are writable).

    The kernel makes the global conntrack knobs (nf_conntrack_max, _buckets, _expect_max) read-only
    (mode 0444) in every other namespace, which is exactly what callers need to know; comparing
    namespace inodes with PID 1 is the fallback (it can be refused inside ``ip netns exec``).
    """
    try:
        return bool(os.stat('/proc/sys/net/netfilter/nf_conntrack_max').st_mode & 0o200)
    except OSError:
        pass
    try:
        return os.stat('/proc/self/ns/net').st_ino == os.stat('/proc/1/ns/net').st_ino
    except OSError:
        return True
