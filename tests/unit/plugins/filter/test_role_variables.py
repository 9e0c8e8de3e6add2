"""The roles keep their promises: every documented variable reaches the engine, no host facts."""
import os

import pytest

from fleet_inputs import ROOT, load


@pytest.mark.parametrize('role,engine', [('tuning', 'conntrack_tune'), ('synflood_guard', 'conntrack_harden')])
def test_every_documented_variable_reaches_the_engine(role, engine):
    specs = load('roles/%s/meta/argument_specs.yml' % role)['argument_specs']['main']['options']
    defaults = load('roles/%s/defaults/main.yml' % role)
    tasks = load('roles/%s/tasks/main.yml' % role)
    assert len(tasks) == 1  # one task per host
    passed = tasks[0]['netfilter.conntrack.%s' % engine]
    assert set(specs) == set(defaults) == set(passed)
    assert all(passed[name] == '{{ %s }}' % name for name in passed)


def test_no_role_sets_host_facts():
    """set_fact persists as a host fact and outranks play vars later in the run (issue 14): the roles use none."""
    for role in ('tuning', 'synflood_guard'):
        directory = os.path.join(ROOT, 'roles', role, 'tasks')
        for name in os.listdir(directory):
            for task in load(os.path.join('roles', role, 'tasks', name)) or []:
                assert 'ansible.builtin.set_fact' not in task and 'set_fact' not in task, (role, name, task['name'])
