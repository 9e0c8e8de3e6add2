# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of the items of a long list option, checked and converted like ansible-core's argument spec does.

conntrack_entry's ``entries`` restores whole tables: 10^5 items. ansible-core validates nested ``options`` item
by item through its generic machinery, copying every item on the way; for 10^5 items that cost more than the
restore itself. The module declares ``entries`` as a list of dicts and checks each item here instead, against
the same option spec (``type``, ``elements``, ``choices``, ``required``, nested ``options``), with
the conversions ansible-core makes (text of a whole number to int, a comma-separated string to a list, key=value
or JSON text to a dict) and messages that name the item, the option, the value and what is allowed::

    check = ItemOptions(spec, 'entries')
    item = check(raw_item, 3)      # raises ConntrackError('entries[3].dport: ...', option='entries[3].dport')

An item whose values already have their types (the common case: a listing fed back) is returned as it is, so
the check allocates nothing. Missing options and ``None`` values stay as they are: the caller's parse reads
them with their defaults (``default`` in the spec is not applied here).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import json

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

_TYPES = ('str', 'int', 'bool', 'list', 'dict', 'raw')
_TRUE = ('yes', 'on', '1', 'true', 'y', 't')
_FALSE = ('no', 'off', '0', 'false', 'n', 'f')


class _Bad(Exception):
    """A value that cannot be converted: what is allowed."""

    def __init__(self, allowed):
        Exception.__init__(self, allowed)
        self.allowed = allowed


def _to_int(value):
    if isinstance(value, bool):
        raise _Bad('a whole number (not a boolean)')
    if isinstance(value, (str, float)):
        try:
            number = decimal.Decimal(value.strip() if isinstance(value, str) else value)
            if number.is_finite() and number == number.to_integral_value():
                return int(number)
        except (decimal.DecimalException, ValueError):
            pass
    raise _Bad('a whole number')


def _to_str(value):
    if isinstance(value, (dict, list, tuple, set)):
        raise _Bad('a string')
    return '' if value is None else str(value)  # a None element is '' (as ansible-core makes it)


def _to_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return value == 1
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Bad('a boolean (true or false)')


def _to_list(value):
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return value.split(',')
    if isinstance(value, dict):
        raise _Bad('a list')
    return [value]


def _to_dict(value):
    if isinstance(value, str):
        text = value.strip()
        if text.startswith('{'):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
        elif '=' in text:
            pairs = {}
            for part in text.replace(',', ' ').split():
                key, sep, val = part.partition('=')
                if not sep or not key:
                    break
                pairs[key.strip()] = val.strip()
            else:
                return pairs
    raise _Bad('a dictionary')


_CONVERT = {'int': _to_int, 'str': _to_str, 'bool': _to_bool, 'list': _to_list, 'dict': _to_dict}
_EXACT = {'int': int, 'str': str, 'bool': bool, 'list': list, 'dict': dict}


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


class ItemOptions(object):
    """A checker of items against an option spec (see the module docstring); ``path`` names the list option."""

    def __init__(self, spec, path):
        self.path = path
        self.names = ', '.join(sorted(spec))
        self.options = {}
        self.required = []
        for name, option in spec.items():
            kind = option.get('type', 'str')
            if kind not in _TYPES:
                raise ValueError('%s: type %r is not supported here' % (name, kind))
            nested = option.get('options')
            sub = ItemOptions(nested, name) if nested else None
            elements = option.get('elements')
            if elements is not None and elements not in _TYPES:
                raise ValueError('%s: elements %r is not supported here' % (name, elements))
            self.options[name] = (kind, elements, tuple(option['choices']) if option.get('choices') else None, sub)
            if option.get('required'):
                self.required.append(name)

    def __call__(self, item, index=None, prefix=''):
        """``item`` checked and converted (the same dict when nothing needed converting); raises ConntrackError."""
        where = '%s%s[%d]' % (prefix, self.path, index) if index is not None else prefix + self.path
        if not isinstance(item, dict):
            try:
                item = _to_dict(item)
            except _Bad:
                raise ConntrackError('%s %s is not a dictionary of options: give a dictionary of %s'
                                     % (where, _show(item), self.names), option=where)
        out = None
        options = self.options
        for name, value in item.items():
            option = options.get(name)
            if option is None:
                raise ConntrackError('%s.%s: no such option; the options are %s' % (where, name, self.names),
                                     option='%s.%s' % (where, name))
            if value is None:
                continue
            new = self._value(option, value, where, name)
            if new is not value:
                if out is None:
                    out = dict(item)
                out[name] = new
        for name in self.required:
            if item.get(name) is None:
                raise ConntrackError('%s.%s is required: give %s' % (where, name, name), option='%s.%s' % (where, name))
        return item if out is None else out

    @staticmethod
    def _value(option, value, where, name):
        kind, elements, choices, sub = option
        path = '%s.%s' % (where, name)
        if kind != 'raw' and type(value) is not _EXACT[kind]:  # pylint: disable=unidiomatic-typecheck
            try:
                value = _CONVERT[kind](value)
            except _Bad as exc:
                raise ConntrackError('%s %s is not %s' % (path, _show(value), exc.allowed), option=path)
        if sub is not None:
            if kind == 'dict':
                return sub(value, prefix=where + '.')
            return [sub(element, number, where + '.') for number, element in enumerate(value)]
        if elements is not None and elements != 'raw':
            exact, convert = _EXACT[elements], _CONVERT[elements]
            converted = None
            for number, element in enumerate(value):
                if type(element) is exact:  # pylint: disable=unidiomatic-typecheck
                    continue
                try:
                    new = convert(element)
                except _Bad as exc:
                    raise ConntrackError('%s[%d] %s is not %s' % (path, number, _show(element), exc.allowed),
                                         option='%s[%d]' % (path, number))
                if converted is None:
                    converted = list(value)
                converted[number] = new
            if converted is not None:
                value = converted
        if choices is not None and kind == 'list':
            for number, element in enumerate(value):
                if element not in choices:
                    raise ConntrackError('%s[%d] %s is not allowed: use any of %s' % (path, number, _show(element), ', '.join(
                        str(choice) for choice in choices)), option='%s[%d]' % (path, number))
        elif choices is not None and value not in choices:
            raise ConntrackError('%s %s is not allowed: use one of %s' % (path, _show(value), ', '.join(
                str(choice) for choice in choices)), option=path)
        return value
