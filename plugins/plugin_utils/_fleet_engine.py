# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the roles' engines (the conntrack_tune and conntrack_harden action plugins) share: their argument specs,
the tuning role's timeout profiles, one way to run a module and keep its essentials, and the tuning step that
conntrack_harden also runs for headroom.

Private to the collection (controller side only). The plans and reports themselves are the roles' filter functions
(plugins/filter/tuning_role.py, synflood_role.py): an engine only runs modules between them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.netfilter.conntrack.plugins.filter.tuning_role import (
    conntrack_tuning_report, conntrack_tuning_role)

INFO = 'netfilter.conntrack.conntrack_info'
SYSCTL = 'netfilter.conntrack.conntrack_sysctl'
NOTRACK = 'netfilter.conntrack.conntrack_notrack'

# Timeout profiles (seconds). Every value and its source is in roles/tuning/README.md and docs/sizing.md.
TUNING_PROFILES = {
    # The kernel's values stay as they are: nothing is set beyond tuning_timeouts.
    'default': {},
    # A NAT gateway: shorter established timeout than the kernel's 5 days, no shorter than RFCs allow.
    'nat_gateway': {
        'tcp_timeout_established': 7440,  # RFC 5382 REQ-5: not less than 2 h 4 min for established TCP
        'udp_timeout_stream': 120,  # RFC 4787 REQ-5: a UDP mapping must live at least 2 min (kernel default 120)
        'udp_timeout': 30,  # the kernel default for one-way UDP, pinned (DNS queries, probes)
    },
    # A Kubernetes node: kube-proxy's defaults (--conntrack-tcp-timeout-established 24h, -close-wait 1h).
    'kubernetes': {'tcp_timeout_established': 86400, 'tcp_timeout_close_wait': 3600},
}

# The options of conntrack_tune: the tuning role's variables, same names, types and defaults
# (roles/tuning/meta/argument_specs.yml and defaults/main.yml; a unit test keeps the three in step).
TUNE_SPEC = {
    'tuning_max': {'type': 'raw', 'default': 'auto'},
    'tuning_policy': {'type': 'str', 'default': 'kernel', 'choices': ['kernel', 'per_core', 'fixed']},
    'tuning_per_core': {'type': 'int', 'default': 32768},
    'tuning_min': {'type': 'int', 'default': 131072},
    'tuning_max_ceiling': {'type': 'int', 'default': 0},
    'tuning_raise_only': {'type': 'bool', 'default': True},
    'tuning_buckets': {'type': 'raw', 'default': 'auto'},
    'tuning_bucket_ratio': {'type': 'int', 'default': 1},
    'tuning_timeouts_profile': {'type': 'str', 'default': 'default', 'choices': ['default', 'nat_gateway', 'kubernetes']},
    'tuning_timeouts': {'type': 'dict', 'default': {}},
    'tuning_persist': {'type': 'bool', 'default': True},
    'tuning_sysctl_file': {'type': 'path', 'default': '/etc/sysctl.d/90-netfilter-conntrack.conf'},
    'tuning_modprobe_file': {'type': 'path', 'default': '/etc/modprobe.d/netfilter-conntrack.conf'},
    'tuning_modules_load_file': {'type': 'path', 'default': '/etc/modules-load.d/netfilter-conntrack.conf'},
    'tuning_force_lower': {'type': 'bool', 'default': False},
    'tuning_load_module': {'type': 'bool', 'default': True},
    'tuning_namespace': {'type': 'str', 'default': ''},
    'tuning_verify': {'type': 'bool', 'default': True},
    'tuning_warn_percent': {'type': 'int', 'default': 80},
    'tuning_report_detail': {'type': 'bool', 'default': False},
}

# What a module result keeps in the engine's result: not its arguments (invocation), not facts (they would become
# the host's facts through the engine), not what the engine moves to the top (diff, warnings, deprecations), not
# the bulk a report never reads (every knob's value, per-CPU statistics, the knob catalogue).
_DROPPED = ('invocation', 'ansible_facts', 'diff', 'warnings', 'deprecations', 'sysctls', 'stats_per_cpu',
            'catalogue', '_ansible_no_log')


class ModuleFailed(Exception):
    """A module call of the engine failed: nothing after it runs. ``result`` is that module's result."""

    def __init__(self, name, result):
        super(ModuleFailed, self).__init__(str(result.get('msg') or '%s failed' % name))
        self.name = name
        self.result = result


def essentials(result):
    """A module result without what the engine's result must not carry (see _DROPPED)."""
    return dict((key, value) for key, value in (result or {}).items() if key not in _DROPPED)


class EngineAction(ActionBase):
    """What both engines do before their own job: the task's result so far, its arguments checked against
    ``SPEC``, the host, check mode and the module runner."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False
    SPEC = {}

    def start(self, tmp, task_vars):
        """(result, args, host, check_mode, calls) of this task."""
        result = super(EngineAction, self).run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=self.SPEC)[1]
        return (result, args, task_vars.get('inventory_hostname', ''), bool(self._task.check_mode),
                Calls(self, task_vars))


class Calls(object):
    """The module calls of one engine run: runs each with the action's ``_execute_module`` (check mode and diff
    come from the task), keeps every result under its step name, and gathers changed, diffs and warnings."""

    def __init__(self, action, task_vars):
        self._action = action
        self._task_vars = task_vars
        self.results = {}
        self.order = []
        self.warnings = []
        self.deprecations = []
        self.diffs = []

    def run(self, step, module, args, judge_failure=False):
        """Run ``module`` with ``args`` (None values left out) as ``step``; return its result.

        A failed result raises ModuleFailed unless ``judge_failure`` (the caller's plan judges it, e.g. a
        conntrack_info on a host where nf_conntrack is not loaded yet)."""
        args = dict((key, value) for key, value in (args or {}).items() if value is not None)
        result = self._action._execute_module(  # pylint: disable=protected-access
            module_name=module, module_args=args, task_vars=self._task_vars)
        result = dict(result or {})
        self._keep(step, result)
        if result.get('failed') and not judge_failure:
            raise ModuleFailed(module, result)
        return result

    def run_steps(self, module, steps):
        """Run ``module`` (conntrack_harden's host-side half) once with ``steps`` ([(step, module, args)], None
        values left out) as its ``_steps``; keep each step's result under its name as ``run`` keeps a module's.
        A failed step (every step before it put back on the host) raises ModuleFailed naming that step's module;
        so does a failure before any step ran."""
        if not steps:
            return
        payload = [{'name': step, 'module': name.rsplit('.', 1)[-1],
                    'args': dict((key, value) for key, value in (args or {}).items() if value is not None)}
                   for step, name, args in steps]
        result = dict(self._action._execute_module(  # pylint: disable=protected-access
            module_name=module, module_args={'_steps': payload}, task_vars=self._task_vars) or {})
        self.warnings.extend(result.get('warnings') or [])
        self.deprecations.extend(result.get('deprecations') or [])
        done = result.get('steps') or {}
        for step, name, _args in steps:
            if step not in done:
                continue
            self._keep(step, dict(done[step]))
            if done[step].get('failed'):
                raise ModuleFailed(name, self.results[step])
        if result.get('failed'):
            raise ModuleFailed(module, result)

    def _keep(self, step, result):
        """Keep ``result`` under ``step``; gather its warnings and diffs."""
        self.warnings.extend(result.pop('warnings', None) or [])
        self.deprecations.extend(result.get('deprecations') or [])
        if result.get('diff'):
            diff = result['diff']
            self.diffs.extend(diff if isinstance(diff, list) else [diff])
        self.results[step] = result
        self.order.append(step)

    @property
    def changed(self):
        return any(bool(self.results[step].get('changed')) for step in self.order)

    def outcome(self):
        """The keys every engine result has from its calls: changed, calls, diff, warnings, deprecations."""
        out = {'changed': self.changed, 'calls': dict((step, essentials(self.results[step])) for step in self.order)}
        if self.diffs:
            out['diff'] = self.diffs[0] if len(self.diffs) == 1 else self.diffs
        if self.warnings:
            out['warnings'] = list(self.warnings)
        if self.deprecations:
            out['deprecations'] = list(self.deprecations)
        return out


def host_facts(task_vars):
    """(memory in MiB, CPUs) from gathered facts, or (None, None): conntrack_info's kernel facts are used then."""
    task_vars = task_vars or {}
    facts = task_vars.get('ansible_facts') or {}
    memtotal = facts.get('memtotal_mb', task_vars.get('ansible_memtotal_mb'))
    vcpus = facts.get('processor_vcpus', task_vars.get('ansible_processor_vcpus'))
    return memtotal, vcpus


def tuning_plan(info, tuning_vars, task_vars):
    """The tuning plan of one host from its conntrack_info result and every tuning_* value."""
    memtotal, vcpus = host_facts(task_vars)
    return conntrack_tuning_role(info, tuning_vars, TUNING_PROFILES, memtotal_mb=memtotal, vcpus=vcpus)


def tuning_apply(calls, plan, step='sysctl'):
    """The one conntrack_sysctl call of a tuning plan when the plan says so; its result, or {} when not run."""
    if not plan.get('apply'):
        return {}
    return calls.run(step, SYSCTL, plan['args'])


def tuning_verify(plan, sysctl_result, info, tuning_vars, check_mode, host):
    """The tuning report of one host, verified from conntrack_sysctl's own result."""
    return conntrack_tuning_report(plan, sysctl_result, info, check_mode=check_mode,
                                   verify=tuning_vars['tuning_verify'], warn_percent=tuning_vars['tuning_warn_percent'],
                                   host=host)


def table_warning_text(host, warning):
    """The near-full warning as the result's ``warnings`` entry (the default callback's [WARNING] line)."""
    text = warning[len('WARNING '):] if warning.startswith('WARNING ') else warning
    return '%s: %s' % (host, text) if host else text


def finish(result, calls, report, detail, host, failure=None):
    """Fill an engine's result: the calls' keys, the report, failed and msg (the problem, the detailed report, or
    the one line), and the near-full warning. ``failure`` is the ModuleFailed that stopped the run, if one did."""
    result.update(calls.outcome())
    result['report'] = report
    host_warning = report.get('warning')
    if host_warning:
        result.setdefault('warnings', []).append(table_warning_text(host, host_warning))
    if failure is not None:
        result['failed'] = True
        result['msg'] = '%s: %s' % (failure.name.rsplit('.', 1)[-1], failure)
        if failure.result.get('exception'):
            result['exception'] = failure.result['exception']
    elif report.get('problem'):
        result['failed'] = True
        result['msg'] = report['problem']
    elif detail:
        result['msg'] = report
        result['_ansible_verbose_always'] = True
    else:
        result['msg'] = report['line']
    return result
