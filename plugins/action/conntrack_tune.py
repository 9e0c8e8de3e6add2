# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_tune: the tuning role's whole per-host job in one task (documentation: plugins/modules/conntrack_tune.py).

Read once (conntrack_info), plan in Python (conntrack_tuning_role), apply and persist in one conntrack_sysctl call
when the plan says so, verify from that call's own result (conntrack_tuning_report) and return one result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_engine import (
    INFO, TUNE_SPEC, EngineAction, ModuleFailed, finish, tuning_apply, tuning_plan, tuning_verify)


class ActionModule(EngineAction):
    """Size, apply, persist and verify the conntrack table of one host."""

    SPEC = TUNE_SPEC

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result, args, host, check_mode, calls = self.start(tmp, task_vars)
        plan, sysctl, failure = {}, {}, None
        try:
            # a failure here (or nf_conntrack not loaded yet, which conntrack_sysctl loads) is judged by the plan
            info = calls.run('info', INFO, {'namespace': args['tuning_namespace'] or None}, judge_failure=True)
            plan = tuning_plan(info, args, task_vars)
            sysctl = tuning_apply(calls, plan)
        except ModuleFailed as exc:
            failure, sysctl = exc, exc.result
        report = tuning_verify(plan, sysctl, calls.results.get('info'), args, check_mode, host)
        return finish(result, calls, report, args['tuning_report_detail'], host, failure)
