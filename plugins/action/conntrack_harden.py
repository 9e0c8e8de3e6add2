# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_harden: the synflood_guard role's whole per-host job in one task (documentation:
plugins/modules/conntrack_harden.py).

Read once (conntrack_info); plan in Python (conntrack_synflood_role, and with headroom the tuning plan from the
same read); only when every plan is good change anything, in one run of the conntrack_harden module on the host
(plugins/module_utils/_steps.py), all or nothing: present = the knobs (SYNPROXY needs tcp_loose=0 in force before
its rules see a packet), the rules, then the headroom's knobs; absent = the rules removed first, then the knobs set
back and forgotten in the persisted files. Verified from the steps' own results (conntrack_synflood_report,
conntrack_tuning_report), one result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.netfilter.conntrack.plugins.filter.synflood_role import (
    conntrack_synflood_report, conntrack_synflood_role)
from ansible_collections.netfilter.conntrack.plugins.module_utils._hardenspec import HARDEN_SPEC
from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_common import outcome
from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_engine import (
    INFO, NOTRACK, SYSCTL, TUNE_SPEC, EngineAction, ModuleFailed, finish, tuning_plan, tuning_verify)

HARDEN = 'netfilter.conntrack.conntrack_harden'  # the host-side half: every change in one process

# Test hooks of the synflood_guard role (roles/synflood_guard/vars/main.yml), read from the host's variables.
BROKEN_FROM_VAR = '__synflood_guard_timestamp_broken_from'
KERNEL_OVERRIDES_VAR = '__synflood_guard_kernel_overrides'


def headroom_vars(args, play_tuning=None):
    """(every tuning_* value for the headroom, or None; a message naming the bad value, or None).

    The tuning defaults, then the host's own tuning_* variables (``play_tuning``: group_vars, play vars, extra
    vars, as the tuning role would take them), then tuning_persist = synflood_guard_persist, then
    synflood_guard_headroom_vars, checked like conntrack_tune's own options."""
    if not args['synflood_guard_headroom'] or args['synflood_guard_state'] != 'present':
        return None, None
    given = dict(play_tuning or {})
    given['tuning_persist'] = args['synflood_guard_persist']
    given['tuning_namespace'] = ''  # the hardening, and so its headroom, is of the host's own namespace
    if (args['synflood_guard_headroom_vars'] or {}).get('tuning_namespace'):
        return None, ('synflood_guard_headroom_vars: tuning_namespace %r is not for the headroom, which sizes the '
                      'table of the namespace the hardening runs in' % args['synflood_guard_headroom_vars']['tuning_namespace'])
    given.update(args['synflood_guard_headroom_vars'])
    if any(not str(name).startswith('tuning_') for name in given):
        return None, None  # the synflood plan names them
    validated = ArgumentSpecValidator(TUNE_SPEC).validate(given)
    if validated.error_messages:
        return None, 'synflood_guard_headroom_vars: %s' % '; '.join(validated.error_messages)
    return validated.validated_parameters, None


class ActionModule(EngineAction):
    """Harden one host against SYN floods (or remove the hardening), verified, in one task."""

    SPEC = HARDEN_SPEC

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result, args, host, check_mode, calls = self.start(tmp, task_vars)
        broken_from = str(self._templar.template(task_vars.get(BROKEN_FROM_VAR, '6.15')))
        overrides = self._templar.template(task_vars.get(KERNEL_OVERRIDES_VAR) or {})
        plan, failure = {}, None
        tuning, tplan = None, {}
        try:
            # a failure here is judged by the plan (the host fails with it, nothing is changed)
            info = calls.run('info', INFO, {}, judge_failure=True)
            plan = conntrack_synflood_role(info, args, broken_from=broken_from, kernel_overrides=overrides)
            play_tuning = dict((name, self._templar.template(task_vars[name])) for name in TUNE_SPEC
                               if name in task_vars)
            tuning, tuning_error = headroom_vars(args, play_tuning)
            if plan.get('error') is None and tuning_error:
                plan = dict(plan, error=tuning_error)
            if plan.get('error') is None and tuning is not None:
                # the headroom's plan from the same read, refused or wrong before anything changes
                tplan = tuning_plan(info, tuning, task_vars)
                if tplan.get('error') or tplan.get('refusal'):
                    plan = dict(plan, error='headroom (tuning): %s' % (tplan.get('error') or tplan.get('refusal')))
            if plan.get('error') is None:
                steps = self._steps(plan, args, info)
                if tuning is not None and tplan.get('apply'):
                    steps.append(('headroom_sysctl', SYSCTL, tplan['args']))
                calls.run_steps(HARDEN, steps)
        except ModuleFailed as exc:
            failure = exc
        tsysctl = calls.results.get('headroom_sysctl') or {}
        info = calls.results.get('info') or {}
        report = conntrack_synflood_report(
            plan, info, self._knobs_result(calls), calls.results.get('rules') or {}, args, check_mode=check_mode,
            warn_percent=args['synflood_guard_warn_percent'], host=host)
        if tuning is not None and tplan:
            self._add_headroom(report, tuning_verify(tplan, tsysctl, info, tuning, check_mode, ''), check_mode)
        return finish(result, calls, report, args['synflood_guard_report_detail'], host, failure)

    @staticmethod
    def _rules_call_needed(plan, args, info, rules):
        """False only when the rules step (conntrack_notrack) could change nothing: no rules wanted, nothing
        persisted, and the read says the collection's nft table does not exist (so there is nothing to remove
        either)."""
        if rules or (plan['drop_invalid'] and args['synflood_guard_state'] == 'present'):
            return True
        if args['synflood_guard_persist']:
            return True  # the persisted table file is not part of the read
        return ((info.get('kernel') or {}).get('owned_nft_table')) is not False

    def _steps(self, plan, args, info):
        """The changes of the plan, in order, as [(step, module, its arguments)]."""
        persist = args['synflood_guard_persist']
        if args['synflood_guard_state'] == 'present':
            # the knobs first: SYNPROXY needs tcp_loose=0 in force before its rules see a packet
            steps = [('sysctl', SYSCTL, {'settings': plan['settings'], 'persist': persist})]
            if self._rules_call_needed(plan, args, info, plan['rules']):
                steps.append(('rules', NOTRACK, {'rules': plan['rules'], 'drop_invalid': plan['drop_invalid'],
                                                 'exclusive': True, 'persist': persist}))
            return steps
        # the rules go first, then the knobs (tcp_loose=1 only once SYNPROXY no longer answers)
        steps = []
        if self._rules_call_needed(plan, args, info, []):
            steps.append(('rules', NOTRACK, {'rules': [], 'drop_invalid': False, 'exclusive': True,
                                             'persist': persist}))
        steps.append(('sysctl', SYSCTL, {'settings': plan['absent_settings']}))
        if persist:
            steps.append(('unpersist', SYSCTL, {'settings': plan['unpersist_settings'], 'state': 'absent'}))
        return steps

    @staticmethod
    def _knobs_result(calls):
        """The conntrack_sysctl result the report verifies; with absent, the files the unpersist call removed too."""
        knobs = dict(calls.results.get('sysctl') or {})
        unpersist = calls.results.get('unpersist')
        if not unpersist:
            return knobs
        files = dict((key, list(value)) for key, value in (knobs.get('files') or {}).items())
        for key, value in (unpersist.get('files') or {}).items():
            files[key] = list(files.get(key) or []) + [path for path in value or [] if path not in (files.get(key) or [])]
        knobs.update(files=files, changed=bool(knobs.get('changed') or unpersist.get('changed')))
        if unpersist.get('failed') and not knobs.get('failed'):
            knobs.update(failed=True, msg=unpersist.get('msg'))
        if unpersist.get('mismatch'):
            knobs['mismatch'] = list(knobs.get('mismatch') or []) + list(unpersist['mismatch'])
        return knobs

    @staticmethod
    def _add_headroom(report, tuning_report, check_mode):
        """The headroom's tuning report under ``headroom`` in the host's report, its outcome in the one line."""
        report['headroom'] = tuning_report
        report['changed'] = bool(report['changed'] or tuning_report['changed'])
        report['changes'] = list(report['changes']) + ['headroom %s' % c for c in tuning_report['changes']]
        if report['problem'] is None and tuning_report['problem']:
            report['problem'] = 'headroom (tuning): %s' % tuning_report['problem']
        head = outcome(tuning_report['problem'], tuning_report['changes'], check_mode)
        line = '%s; headroom %s, max %s' % (report['line'], head, tuning_report['max'])
        report['line'] = line
