# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared validators: one place per concept for values that reach netlink, nft or files.

Every function takes the value as the user gave it and the option name (a dotted path such as
``rules[0].iif`` where it is nested), and returns the checked value or raises ``ConntrackError`` with
a message that names the option, the value and what is allowed. Numbers written as text must be
ASCII decimal digits (Python's ``int()`` also takes ``'٣'`` and ``'²'``-like characters, which no
kernel interface or nft rule means); addresses carry no IPv6 scope id (``fe80::1%eth0``: conntrack
entries and nft address matches have no scope).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import math
import re

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

_DECIMAL = re.compile(r'\A[+-]?[0-9]+\Z')
_NUMBER = re.compile(r'\A(?:0[xX][0-9a-fA-F]+|[0-9]+)\Z')
_IP_CHARS = re.compile(r'\A[0-9A-Fa-f.:/]+\Z')
IFNAMSIZ = 16  # the kernel's buffer, NUL included: names are 1-15 bytes


def parse_int(value, option, low=None, high=None, what='values', hex_ok=False):
    """A whole number from an int or a string of ASCII digits (``0x`` hex too with ``hex_ok``).

    Booleans, fractions, infinities and non-ASCII digits are refused.
    """
    number = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _DECIMAL.match(text):
            number = int(text, 10)
        elif hex_ok and _NUMBER.match(text):
            number = int(text, 0)
    if number is None:
        allowed = 'a whole number' if low is None or high is None else 'a whole number %d-%d' % (low, high)
        raise ConntrackError('%s %r is not %s%s' % (option, value, allowed,
                                                    ' (decimal or 0x-hex)' if hex_ok else ''), option=option)
    if low is not None and number < low or high is not None and number > high:
        raise ConntrackError('%s %s is out of range: %s are %s-%s' % (
            option, value, what, low if low is not None else '', high if high is not None else ''), option=option)
    return number


def parse_port_spec(value, option):
    """A port ``N`` or a range ``N-M`` (ASCII digits, 0-65535) -> (low, high)."""
    if isinstance(value, str) and '-' in value.strip()[1:]:
        text = value.strip()
        low_text, high_text = text.split('-', 1)
        low = parse_int(low_text, option, 0, 65535, 'ports')
        high = parse_int(high_text, option, 0, 65535, 'ports')
        if low > high:
            raise ConntrackError('%s range %s is inverted: write the lower port first' % (option, text), option=option)
        return low, high
    port = parse_int(value, option, 0, 65535, 'ports')
    return port, port


def check_text(value, option, what='a value'):
    """A string without control characters (NUL, newline, tab, DEL...)."""
    text = value if isinstance(value, str) else str(value)
    for char in text:
        if ord(char) < 0x20 or ord(char) == 0x7f:
            raise ConntrackError('%s %r is not %s: it contains a control character (%r)' % (
                option, value, what, char), option=option)
    return text


def check_ifname(value, option):
    """An interface name as the kernel and nft take it: 1-15 bytes, no whitespace, control characters,
    quotes, backslashes, slashes or colons, not ``.`` or ``..``. A trailing ``*`` is nft's wildcard."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    size = len(text.encode('utf-8', 'surrogatepass'))
    bad = [c for c in text if c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f or c in '"\'\\/:']
    if not text or size >= IFNAMSIZ or bad or text in ('.', '..') or '*' in text[:-1]:
        raise ConntrackError('%s %r is not a valid interface name: 1-15 bytes (not characters), no whitespace, '
                             'control characters, quotes, backslashes, slashes or colons (a trailing * matches '
                             'a prefix)' % (option, value), option=option)
    return text


def parse_network(value, option):
    """An address or CIDR (``192.0.2.0/24``, ``192.0.2.0/255.255.255.0``, ``2001:db8::/32``), no scope id."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and _IP_CHARS.match(text):
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError:
            pass
    raise ConntrackError('%s %r is not a valid IPv4/IPv6 address or CIDR (e.g. 192.0.2.7, 198.51.100.0/24, '
                         '2001:db8::/32; no IPv6 scope id)' % (option, value), option=option)


def parse_address(value, option, what='an entry has exact addresses, no CIDR'):
    """One IPv4 or IPv6 address, no CIDR, no scope id."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and _IP_CHARS.match(text) and '/' not in text:
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            pass
    raise ConntrackError('%s %r is not an IPv4 or IPv6 address (%s; no IPv6 scope id)' % (option, value, what),
                         option=option)
