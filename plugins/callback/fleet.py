# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: fleet
type: stdout
short_description: One line per host at fleet scale
version_added: 0.1.0
description:
  - The output of the default callback without what repeats for every host and task. Made for the collection's
    playbooks (C(audit.yml), C(tune.yml), C(harden.yml)), whose roles end with one report line per host.
  - A message of C(ansible.builtin.debug) prints as one line (a list as one line per item), and so does the
    message of the roles' engines C(netfilter.conntrack.conntrack_tune) and C(netfilter.conntrack.conntrack_harden)
    (the host's report line; a warning already in that line is not printed again); a failed or unreachable host
    prints one line with the task and the message; other warnings print as they come.
  - Results that are ok, changed or skipped print nothing (the roles' report line says what changed), and no task
    banner is printed. The recap is one line of totals, plus one line per host that failed or was unreachable.
  - With C(-v) or more, everything is printed as the default callback prints it.
  - "Use it with C(ANSIBLE_STDOUT_CALLBACK=netfilter.conntrack.fleet), or C(stdout_callback = netfilter.conntrack.fleet)
    in the C([defaults]) section of C(ansible.cfg)."
author:
  - netfilter.conntrack developers (@netfilter-conntrack)
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - set as the stdout callback in the configuration
'''

import json
import re

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as DefaultCallback


# The roles' engines: their result's msg is the host's one line (the whole report with *_report_detail).
ENGINES = frozenset(('netfilter.conntrack.conntrack_tune', 'netfilter.conntrack.conntrack_harden'))


def is_engine(task):
    """True for a task of conntrack_tune or conntrack_harden, however the task named the action."""
    action = getattr(task, 'resolved_action', None) or task.action
    return action in ENGINES or 'netfilter.conntrack.' + str(action) in ENGINES


def warning_text(warning):
    """The text of a warning: a string (ansible-core before 2.19) or a warning summary (2.19 and later)."""
    event = getattr(warning, 'event', None)
    return str(getattr(event, 'msg', warning) if event is not None else warning)


def one_line(value):
    """A message as one line: text as it is (line breaks turned into spaces), anything else as compact JSON."""
    if isinstance(value, str):
        return ' '.join(value.splitlines()).strip()
    return json.dumps(value, sort_keys=True, default=str)


class CallbackModule(DefaultCallback):
    """The default callback, quiet per host and per task unless something needs a person (see DOCUMENTATION)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'netfilter.conntrack.fleet'

    def _verbose(self):
        return self._display.verbosity > 0

    # --- banners: the play only
    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._verbose():
            super(CallbackModule, self).v2_playbook_on_task_start(task, is_conditional)
        else:
            self._last_task_name = task.get_name().strip()

    def v2_playbook_on_handler_task_start(self, task):
        if self._verbose():
            super(CallbackModule, self).v2_playbook_on_handler_task_start(task)

    def v2_playbook_on_include(self, included_file):
        if self._verbose():
            super(CallbackModule, self).v2_playbook_on_include(included_file)

    # --- results
    def v2_runner_on_ok(self, result):
        if self._verbose():
            super(CallbackModule, self).v2_runner_on_ok(result)
            return
        if is_engine(result.task) and 'msg' in result.result:
            self._engine_line(result)
            return
        self._handle_warnings_and_exception(result)
        if result.task.action not in C._ACTION_DEBUG or 'msg' not in result.result:  # pylint: disable=protected-access
            return
        message = result.result['msg']
        host = result.host.get_name()
        for item in (message if isinstance(message, list) else [message]):
            text = one_line(item)
            self._display.display(text if text.startswith(host + ':') or isinstance(message, list)
                                  else '%s: %s' % (host, text))

    def _engine_line(self, result):
        """The engine's line, then only the warnings that line does not already say (the near-full one is in it)."""
        host = result.host.get_name()
        text = one_line(result.result['msg'])
        line = text if text.startswith(host + ':') else '%s: %s' % (host, text)
        self._display.display(line)
        squeezed = re.sub(r'\s+', ' ', line)
        for warning in (result.result.get('warnings') or []):
            said = re.sub(r'\s+', ' ', warning_text(warning))
            if said.startswith(host + ': '):
                said = said[len(host) + 2:]
            if said not in squeezed:
                self._display.warning(warning_text(warning))

    def v2_runner_on_skipped(self, result):
        if self._verbose():
            super(CallbackModule, self).v2_runner_on_skipped(result)

    def v2_runner_item_on_ok(self, result):
        if self._verbose():
            super(CallbackModule, self).v2_runner_item_on_ok(result)

    def v2_runner_item_on_skipped(self, result):
        if self._verbose():
            super(CallbackModule, self).v2_runner_item_on_skipped(result)

    def _failure(self, result, what):
        res = result.result
        message = res.get('msg') or res.get('stderr') or res.get('reason') or 'failed'
        line = one_line(message)
        host = result.host.get_name()
        text = line if line.startswith(host + ':') else '%s: %s' % (host, line)
        self._display.display('%s %s [%s]: %s' % (what, host, result.task.get_name().strip(), text),
                              color=C.COLOR_ERROR, stderr=self.get_option('display_failed_stderr'))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if self._verbose():
            super(CallbackModule, self).v2_runner_on_failed(result, ignore_errors)
            return
        self._handle_warnings(result.result)  # the message itself is the one line below
        self._failure(result, 'ignored' if ignore_errors else 'FAILED')

    def v2_runner_item_on_failed(self, result):
        if self._verbose():
            super(CallbackModule, self).v2_runner_item_on_failed(result)
            return
        self._failure(result, 'FAILED')

    def v2_runner_on_unreachable(self, result):
        if self._verbose():
            super(CallbackModule, self).v2_runner_on_unreachable(result)
            return
        self._failure(result, 'UNREACHABLE')

    # --- recap
    def v2_playbook_on_stats(self, stats):
        if self._verbose():
            super(CallbackModule, self).v2_playbook_on_stats(stats)
            return
        hosts = sorted(stats.processed.keys())
        totals = dict((key, 0) for key in ('ok', 'changed', 'failures', 'unreachable', 'skipped'))
        changed_hosts, bad = 0, []
        for host in hosts:
            summary = stats.summarize(host)
            for key in totals:
                totals[key] += summary[key]
            changed_hosts += 1 if summary['changed'] else 0
            if summary['failures'] or summary['unreachable']:
                bad.append('%s: failed=%d unreachable=%d' % (host, summary['failures'], summary['unreachable']))
        color = C.COLOR_ERROR if bad else (C.COLOR_CHANGED if changed_hosts else C.COLOR_OK)
        self._display.display('RECAP %d hosts: %d changed (%d tasks), %d failed, %d unreachable; ok=%d skipped=%d'
                              % (len(hosts), changed_hosts, totals['changed'], totals['failures'],
                                 totals['unreachable'], totals['ok'], totals['skipped']), color=color)
        for line in bad:
            self._display.display(line, color=C.COLOR_ERROR)
