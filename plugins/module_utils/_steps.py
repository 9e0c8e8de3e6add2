# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several conntrack_sysctl and conntrack_notrack tasks in one process, all or nothing.

The host-side half of conntrack_harden: its action plugin plans on the controller and sends the changes as steps,
so a host pays for one module process instead of one per change, and a failing step leaves nothing behind. Every
step's options are checked as its module checks them before any step runs; a step that fails puts back its own
change (as its module does), then every step before it is put back, newest first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._nftrules import NOTRACK_ARGSPEC, NotrackPlan
from ansible_collections.netfilter.conntrack.plugins.module_utils._sysctltask import (
    SYSCTL_ARGSPEC, SYSCTL_CHECKS, sysctl_task)

# module name -> (its options, the checks between them)
STEP_MODULES = {
    'conntrack_sysctl': (SYSCTL_ARGSPEC, SYSCTL_CHECKS),
    'conntrack_notrack': (NOTRACK_ARGSPEC, {}),
}

STEP_SPEC = dict(
    name=dict(type='str', required=True),
    module=dict(type='str', required=True, choices=sorted(STEP_MODULES)),
    args=dict(type='dict', default={}),
)


def check_steps(steps):
    """[(name, module, params)] with each step's params checked and completed as its module would; a
    ConntrackError naming the step and what is wrong with it for the first bad one, before anything runs."""
    checked, seen = [], set()
    for index, step in enumerate(steps or []):
        where = '_steps[%d]' % index
        name, module, args = step.get('name'), step.get('module'), step.get('args') or {}
        if name in seen:
            raise ConntrackError('%s.name %r is used by an earlier step: every step needs its own name'
                                 % (where, name), option='_steps')
        seen.add(name)
        if args.get('namespace'):
            raise ConntrackError('%s.args.namespace %r: steps run where the task runs, they take no namespace of '
                                 'their own' % (where, args['namespace']), option='_steps')
        spec, checks = STEP_MODULES[module]
        try:
            validated = ArgumentSpecValidator(spec, **checks).validate(args)
        except (TypeError, ValueError, OverflowError) as exc:  # values ansible-core's checks raise on
            raise ConntrackError('%s.args (%s): %s' % (where, module, exc), option='_steps')
        if validated.error_messages:
            messages = [('unsupported option %s' % error.msg) if isinstance(error, UnsupportedError) else error.msg
                        for error in validated.errors]
            raise ConntrackError('%s.args (%s): %s' % (where, module, '; '.join(messages)), option='_steps')
        checked.append((name, module, validated.validated_parameters))
    return checked


def _run_one(module, params, check_mode, run_command, initial_namespace):
    """(result, undoer) of one step; ``undoer.undo()`` puts its change back."""
    if module == 'conntrack_sysctl':
        return sysctl_task(params, check_mode, run_command, initial_namespace)
    plan = NotrackPlan(params, initial_namespace=initial_namespace)
    result, warnings = plan.run(check_mode)
    result['warnings'] = warnings
    return result, plan


def run_steps(checked, check_mode, run_command, initial_namespace):
    """Run the ``check_steps`` result in order. Returns (results: {name: the step's result, as its module would
    return it}, failure: None or the failing step's message, every earlier step put back).

    A failing step's result has ``failed``, ``msg``, ``option`` and ``undone`` (the steps put back, newest
    first); what could not be put back is named in its message."""
    results, done = {}, []
    for name, module, params in checked:
        try:
            results[name], undoer = _run_one(module, params, check_mode, run_command, initial_namespace)
        except ConntrackError as exc:
            unrestored = []
            for earlier, earlier_undoer in reversed(done):
                unrestored.extend('%s: %s' % (earlier, what) for what in earlier_undoer.undo())
                results[earlier].update(changed=False, undone=True)
                results[earlier].pop('diff', None)
            msg = exc.msg
            if done:
                msg += '; put back what the steps before it changed (%s)' % ', '.join(n for n, _u in reversed(done))
            if unrestored:
                msg += '; and these could not be put back: %s' % '; '.join(unrestored)
            results[name] = dict(exc.details, failed=True, changed=False, msg=msg, option=exc.option,
                                 undone=[n for n, _u in reversed(done)])
            return results, '%s (%s): %s' % (name, module, msg)
        done.append((name, undoer))
    return results, None
