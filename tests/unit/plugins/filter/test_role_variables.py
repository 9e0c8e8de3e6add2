"""The roles keep their promises: every documented variable reaches the plan filters, no host facts."""
import os

import pytest

from fleet_inputs import ROOT, load


@pytest.mark.parametrize('role,internal', [('tuning', '__tuning_own_vars'), ('synflood_guard', '__synflood_guard_vars')])
def test_every_documented_variable_reaches_the_plan(role, internal):
    specs = load('roles/%s/meta/argument_specs.yml' % role)['argument_specs']['main']['options']
    defaults = load('roles/%s/defaults/main.yml' % role)
    passed = load('roles/%s/vars/main.yml' % role)[internal]
    assert set(specs) == set(defaults) == set(passed)


def test_no_role_sets_host_facts():
    """set_fact persists as a host fact and outranks play vars later in the run (issue 14): the roles use none."""
    for role in ('tuning', 'synflood_guard'):
        directory = os.path.join(ROOT, 'roles', role, 'tasks')
        for name in os.listdir(directory):
            for task in load(os.path.join('roles', role, 'tasks', name)) or []:
                assert 'ansible.builtin.set_fact' not in task and 'set_fact' not in task, (role, name, task['name'])
