# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one file layer: read, atomic write (fsync + rename), remove, and changes that can be undone.

Every error is a ``ConntrackError`` naming the path (and the option it came from, when given).
``FileChanges`` records what each write or removal replaced, so a task that fails after writing
some files (or after writing files and then failing to apply to the kernel) puts them back:
a failed task changes nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import stat
import tempfile

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

try:  # the libselinux binding Ansible's own atomic_move uses, where the host has it
    import selinux
except ImportError:
    selinux = None


def _keep_context(tmp, path):
    """Give the new file the SELinux context of the file it replaces (as ``module.atomic_move`` does), so a
    rewritten sysctl.d or unit file keeps the label systemd needs to read it."""
    if selinux is None or not os.path.exists(path):
        return
    try:
        if selinux.is_selinux_enabled() <= 0:
            return
        rc, context = selinux.lgetfilecon_raw(path)
        if rc >= 0 and context:
            selinux.lsetfilecon(tmp, context)
    except OSError:
        pass  # the file keeps the default context of its directory, as a new file would


def _fail(action, path, exc, option):
    reason = getattr(exc, 'strerror', None) or str(exc)
    where = ' (%s)' % option if option else ''
    return ConntrackError('cannot %s %r%s: %s' % (action, path, where, reason), option=option)


def _check_path(path, option):
    if not isinstance(path, str) or not path or '\0' in path:
        raise ConntrackError('%s %r is not a usable file path (empty, or a NUL byte in it)' % (option or 'path', path),
                             option=option)


def read_file(path, option=None):
    """The file's text, or None when it does not exist."""
    _check_path(path, option)
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise _fail('read', path, exc, option)
    except UnicodeDecodeError as exc:
        raise _fail('read', path, exc, option)


def file_mode(path):
    """The permission bits of ``path``, or None when it does not exist."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None


def atomic_write(path, text, mode=0o644, option=None):
    """Write ``text`` to ``path`` through a temporary file in the same directory, fsync and a rename."""
    _check_path(path, option)
    directory = os.path.dirname(path) or '.'
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    except (IOError, OSError) as exc:
        raise _fail('write', path, exc, option)
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        _keep_context(tmp, path)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _fail('write', path, exc, option)


def remove_file(path, option=None):
    """Remove ``path``; True when it existed."""
    _check_path(path, option)
    try:
        os.unlink(path)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise _fail('remove', path, exc, option)
    return True


class FileChanges(object):
    """Writes, removals and symlinks that ``rollback()`` undoes, newest first."""

    def __init__(self):
        self._undo = []

    def write(self, path, text, mode=0o644, option=None):
        old = read_file(path, option)
        old_mode = file_mode(path)
        atomic_write(path, text, mode, option)
        self._undo.append(('file', path, old, old_mode))

    def remove(self, path, option=None):
        if os.path.islink(path):
            target = os.readlink(path)
            remove_file(path, option)
            self._undo.append(('link', path, target, None))
            return True
        old = read_file(path, option)
        old_mode = file_mode(path)
        if remove_file(path, option):
            self._undo.append(('file', path, old, old_mode))
            return True
        return False

    def symlink(self, target, path, option=None):
        _check_path(path, option)
        try:
            directory = os.path.dirname(path)
            if directory and not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            os.symlink(target, path)
        except (IOError, OSError) as exc:
            raise _fail('link', path, exc, option)
        self._undo.append(('link', path, None, None))

    def rollback(self):
        """Put every file back as it was; returns the paths that could not be restored."""
        failed = []
        for kind, path, old, mode in reversed(self._undo):
            try:
                if kind == 'link':
                    if os.path.lexists(path):
                        os.unlink(path)
                    if old is not None:
                        os.symlink(old, path)
                elif old is None:
                    remove_file(path)
                else:
                    atomic_write(path, old, mode if mode is not None else 0o644)
            except (ConntrackError, OSError):
                failed.append(path)
        self._undo = []
        return failed

    def undo(self, exc):
        """Roll back, and return ``exc`` (a ConntrackError) with the paths that could not be restored named in
        its message, so a failure that leaves a change behind says so."""
        failed = self.rollback()
        if failed:
            exc = ConntrackError('%s; and these files could not be put back as they were: %s'
                                 % (exc.msg, ', '.join(failed)), option=exc.option, **exc.details)
        return exc
