# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module runner: build the AnsibleModule, enter the namespace, run, warn, diff, exit or fail.

A module's ``main()`` is a form over it::

    module = new_module(argument_spec, supports_check_mode=True)
    run(module, lambda params, check_mode: do_the_work(params, check_mode))

``run`` may use of ``module``: ``params``, ``check_mode``, ``_diff``, ``warn``, ``exit_json`` and
``fail_json``; the work function gets plain values and raises ``ConntrackError`` for the user.
Every failure has one payload shape: ``msg`` (names the option at fault), ``namespace``, and the
error's details.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal

from ansible.module_utils import basic
from ansible.module_utils.common.validation import check_type_dict

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError


def _infinite(value):
    if not isinstance(value, (str, float)):
        return False
    try:
        return decimal.Decimal(value.strip() if isinstance(value, str) else value).is_infinite()
    except (decimal.DecimalException, ValueError, TypeError):
        return False


def _dict_like(value):
    """True when ansible-core's dict conversion takes ``value`` (a dict, JSON text or key=value text)."""
    if isinstance(value, dict):
        return True
    if not isinstance(value, str):
        return False
    try:
        check_type_dict(value)
    except (TypeError, ValueError):
        return False
    return True


def _option_names(option):
    return ', '.join(sorted((option.get('options') or {}).keys()))


def _relax(spec, params, prefix, bad):
    """``spec``, or a copy of it in which every option that would make ansible-core's checks raise instead of
    report (an int option holding an infinite number; a dict or a list of dicts with sub-options holding something
    that is no dict) takes its value as raw; their paths, values and what is allowed go to ``bad``.

    Only the options present in ``params`` are looked at, and ``spec`` is copied only where something is
    relaxed: a list of 10^5 dicts (conntrack_entry's ``entries``) costs a look at each item's own keys."""
    if not isinstance(params, dict):
        return spec
    out = spec
    for name, value in params.items():
        option = spec.get(name)
        if option is None or value is None:
            continue
        path = prefix + name
        kind = option.get('type', 'str')
        new = None
        if kind == 'int' and _infinite(value):
            new = dict(option, type='raw')
            bad.append((path, value, 'a whole number (infinity is not a value here)'))
        elif kind == 'dict' and option.get('options'):
            if not _dict_like(value):
                bad.append((path, value, 'a dictionary (of %s)' % _option_names(option)))
                new = dict(option, type='raw', options=None)
            elif isinstance(value, dict):
                sub = _relax(option['options'], value, path + '.', bad)
                if sub is not option['options']:
                    new = dict(option, options=sub)
        elif kind == 'list':
            items = value if isinstance(value, list) else None
            if option.get('elements') == 'int' and items and any(_infinite(v) for v in items):
                new = dict(option, elements='raw')
                bad.append((path, next(v for v in items if _infinite(v)), 'a list of whole numbers'))
            elif option.get('elements') == 'dict' and option.get('options'):
                wrong = [(i, v) for i, v in enumerate(items if items is not None else [value]) if not _dict_like(v)]
                if wrong:
                    index, item = wrong[0]
                    bad.append(('%s[%d]' % (path, index) if items is not None else path, item,
                                'a list of dictionaries (of %s)' % _option_names(option)))
                    new = dict(option, type='raw', elements=None, options=None)
                else:
                    sub = option['options']
                    for index, item in enumerate(items or ()):
                        if isinstance(item, dict):
                            sub = _relax(sub, item, '%s[%d].' % (path, index), bad)
                    if sub is not option['options']:
                        new = dict(option, options=sub)
        if new is not None:
            if out is spec:
                out = dict(spec)
            out[name] = new
    return out


BULK_ITEMS = 1000
BULK_TEXT = 4096


class _SharedList(list):
    """A long list option (conntrack_entry's ``entries``: 10^5 items) that ansible-core's argument checks do not
    copy item by item: the module reads its items and never changes them, and a deep copy of 10^5 dicts costs
    seconds. ansible-core still checks the list's type and builds its own list of the (same) items."""

    def __deepcopy__(self, memo):
        return self


class _Module(basic.AnsibleModule):
    """AnsibleModule on the parameters ``new_module`` already read (ansible-core would read and copy them again)."""

    def __init__(self, params, **kwargs):
        self._preloaded = params
        super(_Module, self).__init__(**kwargs)

    def _load_params(self):
        self.params = self._preloaded

    def _log_invocation(self):
        """ansible-core's log line of the invocation (syslog or the journal), a long list as its length: 10^5 items
        would be one log message of tens of megabytes."""
        saved = self.params
        self.params = _invocation_args(saved)
        try:
            super(_Module, self)._log_invocation()
        finally:
            self.params = saved


def new_module(argument_spec, **kwargs):
    """``AnsibleModule(argument_spec=argument_spec, **kwargs)``, closing gaps of ansible-core's checks.

    ansible-core converts int options through Decimal, so ``inf``, ``Infinity`` or YAML's ``.inf`` raise
    OverflowError inside AnsibleModule (a traceback) instead of a message; a dict option with sub-options given
    a number raises TypeError; one given text that is no dict fails without naming the option. Such values are
    found first, their options taken as raw for the parse, and the task fails naming the option.
    """
    bad = []
    params = basic._load_params()  # pylint: disable=protected-access
    for name, value in (params.items() if isinstance(params, dict) else ()):
        if isinstance(value, list) and len(value) > BULK_ITEMS and name in argument_spec:
            params[name] = _SharedList(value)
    relaxed = _relax(argument_spec, params, '', bad)
    if not bad:
        return _Module(params, argument_spec=argument_spec, **kwargs)
    module = _Module(params, argument_spec=relaxed, **kwargs)
    path, value, allowed = bad[0]
    module.fail_json(msg='%s %r is not %s' % (path, value, allowed))
    return None  # not reached: fail_json exits


def enter(module):
    """Enter ``module.params['namespace']`` (a name under /run/netns or a path); returns the path or None."""
    from ansible_collections.netfilter.conntrack.plugins.module_utils._netns import enter_namespace

    return enter_namespace(module.params.get('namespace'))


def fail(module, exc):
    module.fail_json(msg=exc.msg, namespace=module.params.get('namespace'),
                     invocation={'module_args': _invocation_args(module.params)}, **exc.details)


def run(module, work, validate=None):
    """Validate (``validate(params)``, before the namespace is entered), enter the namespace, then
    ``work(params, check_mode)`` -> result dict, or ``work(params, check_mode, checked)`` with what ``validate``
    returned (so nothing is validated twice). The result's ``warnings`` become Ansible warnings, ``diff`` is
    kept in diff mode only; exit, or fail on a ``ConntrackError``."""
    try:
        checked = validate(module.params) if validate is not None else None
        enter(module)
        if validate is None:
            result = work(module.params, module.check_mode)
        else:
            result = work(module.params, module.check_mode, checked)
    except ConntrackError as exc:
        fail(module, exc)
        return
    for warning in result.pop('warnings', None) or ():
        module.warn(warning)
    if not module._diff or not result.get('diff'):  # pylint: disable=protected-access
        result.pop('diff', None)
    result.setdefault('namespace', module.params.get('namespace'))
    result.setdefault('invocation', {'module_args': _invocation_args(module.params)})
    module.exit_json(**result)


def _invocation_args(params):
    """The module's arguments as the result's ``invocation`` shows them, a list of more than BULK_ITEMS items
    (conntrack_entry's ``entries`` restoring a table) as its length, a text of more than BULK_TEXT characters
    (conntrack_entry's ``saved``) as its first line and length: ansible-core would echo it all back."""
    return dict((name, _shown(value)) for name, value in params.items())


def _shown(value):
    if isinstance(value, list) and len(value) > BULK_ITEMS:
        return '(a list of %d items)' % len(value)
    if isinstance(value, str) and len(value) > BULK_TEXT:
        return '%s... (a text of %d characters)' % (value[:80].split('\n', 1)[0], len(value))
    return value
