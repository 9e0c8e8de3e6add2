# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pieces of netfilter.conntrack's module_utils (private to the collection).

Errors are raised as ``ConntrackError`` with a user-facing message; module files
turn them into ``fail_json(msg=...)``. module_utils never calls ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os


class ConntrackError(Exception):
    """An error whose message is meant for the user as it is.

    ``option`` names the module option at fault when there is one, so tests can
    check that the message points at the right place.
    """

    def __init__(self, msg, option=None, **details):
        super(ConntrackError, self).__init__(msg)
        self.msg = msg
        self.option = option
        self.details = details


class MissingLibraryError(ConntrackError):
    """A feature needs a Python library that the host does not have."""

    def __init__(self, library, reason=None):
        msg = 'the %s Python library is required%s' % (library, ' for %s' % reason if reason else '')
        super(MissingLibraryError, self).__init__(msg)
        self.library = library
        self.reason = reason


def have_library(name):
    """True when ``name`` is importable, without paying for the import."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def read_text(path, default=None):
    """Return a stripped text file, or ``default`` when it does not exist or cannot be read."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return default


def read_int(path, default=None):
    """Return a file holding one integer, or ``default``."""
    text = read_text(path)
    if text is None:
        return default
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return default


def conntrack_available():
    """True when this kernel (in this network namespace) has nf_conntrack loaded."""
    return os.path.exists('/proc/sys/net/netfilter/nf_conntrack_count')


# CTA_ZONE filters a dump or a flush from Linux 6.8 ("ctnetlink: support filtering by zone"); older
# kernels ignore the attribute and would list or flush every zone. Status filters came earlier. Below
# this version a flush is a batched delete of dumped entries, each checked by the Python predicate, and
# a listing checks every entry in Python too.
KERNEL_FLUSH_MIN = (6, 8)


def kernel_version(release=None):
    """(major, minor) of the running kernel, (0, 0) when unknown."""
    release = release or os.uname()[2]
    parts = []
    for piece in release.split('.')[:2]:
        digits = ''
        for char in piece:
            if char not in '0123456789':
                break
            digits += char
        parts.append(int(digits) if digits else 0)
    while len(parts) < 2:
        parts.append(0)
    return tuple(parts)


NAMESPACE_ARGSPEC = dict(namespace=dict(type='str'))


def exit_with_bulk(module, result, bulk_keys=('entries',)):
    """``module.exit_json(**result)``, fast for results holding very large lists.

    AnsibleModule.exit_json copies the whole result in Python to scrub no_log values and then
    serialises every container through a Python ``default`` hook: ~25 s for 250,000 entries.
    When the module has no no_log values, the bulk lists are plain JSON data (str/int/list/dict
    made by our decoders), so they are encoded with the C JSON encoder and spliced into the
    result that exit_json produced for everything else (warnings, invocation, ...).

    A bulk value may be a stream (an object with ``chunks()`` and ``trailer()``): its items are
    encoded (or, for a stream whose ``text`` is true, already JSON texts) and written chunk by chunk
    as they arrive, then the trailer's keys are added. An error
    while streaming ends the (still valid) JSON document with ``failed`` and ``msg``.
    """
    import io
    import json
    import sys

    bulk = dict((key, result.pop(key)) for key in bulk_keys if key in result)
    if not bulk or module.no_log_values:
        for key, value in bulk.items():
            if hasattr(value, 'chunks'):
                items = [item for chunk in value.chunks() for item in chunk]
                if getattr(value, 'text', False):
                    items = json.loads('[%s]' % ', '.join(items))
                result.update(value.trailer())
                value = items
            result[key] = value
        module.exit_json(**result)
    real_stdout = sys.stdout
    sys.stdout = captured = io.StringIO()
    code = 0
    try:
        module.exit_json(**result)
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.stdout = real_stdout
    text = captured.getvalue().rstrip()
    if code not in (0, None) or not text.endswith('}'):
        real_stdout.write(captured.getvalue())
        # exit_json already ran and chose this code; we only forward it  # pylint: disable-next=ansible-bad-function
        sys.exit(code)
    write = real_stdout.write
    dumps = json.dumps
    write(text[:-1])
    failure = None
    for key, value in bulk.items():
        write(', %s: ' % dumps(key))
        if not hasattr(value, 'chunks'):
            write(dumps(value))
            continue
        write('[')
        first = True
        text = getattr(value, 'text', False)
        try:
            for chunk in value.chunks():
                body = ', '.join(chunk) if text else dumps(chunk)[1:-1]
                write(body if first else ', ' + body)
                first = False
        except ConntrackError as exc:
            failure = exc.msg
        write(']')
        for tkey, tvalue in value.trailer().items():
            write(', %s: %s' % (dumps(tkey), dumps(tvalue)))
    if failure is not None:
        write(', "failed": true, "msg": %s' % dumps(failure))
    write('}\n')
    real_stdout.flush()
    # the result was written above, spliced into exit_json's own output  # pylint: disable-next=ansible-bad-function
    sys.exit(1 if failure is not None else 0)
