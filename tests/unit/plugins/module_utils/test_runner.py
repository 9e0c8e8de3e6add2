"""_runner: the values ansible-core's argument checks would crash on, or report without naming the option."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _runner

SPEC = dict(
    port=dict(type='int'),
    ports=dict(type='list', elements='int'),
    nat=dict(type='dict', options=dict(address=dict(type='str'), port=dict(type='int'))),
    rules=dict(type='list', elements='dict', options=dict(
        mss=dict(type='int'),
        opts=dict(type='dict', options=dict(wscale=dict(type='int'))))),
    name=dict(type='str'),
)


def bad_of(params):
    bad = []
    relaxed = _runner._relax(SPEC, params, '', bad)
    return [(path, allowed.split(' ')[1]) for path, _value, allowed in bad], relaxed


@pytest.mark.parametrize('params,paths', [
    ({'port': float('inf')}, [('port', 'whole')]),
    ({'port': 'Infinity'}, [('port', 'whole')]),
    ({'port': '-inf'}, [('port', 'whole')]),
    ({'ports': [1, 'inf']}, [('ports', 'list')]),
    ({'nat': 5}, [('nat', 'dictionary')]),
    ({'nat': 'x'}, [('nat', 'dictionary')]),
    ({'nat': {'port': float('inf')}}, [('nat.port', 'whole')]),
    ({'rules': 'a,b'}, [('rules', 'list')]),
    ({'rules': ['x']}, [('rules[0]', 'list')]),
    ({'rules': [{'mss': 1}, {'mss': float('inf')}]}, [('rules[1].mss', 'whole')]),
    ({'rules': [{'opts': 3}]}, [('rules[0].opts', 'dictionary')]),
    ({'rules': [{'opts': {'wscale': '.inf'}}]}, []),  # YAML .inf arrives as a float, the text is no number
])
def test_values_that_would_crash_or_go_unnamed(params, paths):
    found, _relaxed = bad_of(params)
    assert found == paths


@pytest.mark.parametrize('params', [
    {}, {'port': 5, 'ports': [1, 2], 'nat': {'address': 'x', 'port': 1}, 'rules': [{'mss': 1, 'opts': {}}]},
    {'nat': 'address=x port=1'}, {'nat': '{"address": "x"}'}, {'port': 'nan'}, {'name': 'inf'},
])
def test_good_or_ordinary_values_are_left_to_ansible(params):
    found, relaxed = bad_of(params)
    assert found == [] and relaxed == SPEC


def test_the_relaxed_spec_takes_the_bad_value_as_raw():
    _found, relaxed = bad_of({'nat': 5, 'rules': [{'mss': float('inf')}]})
    assert relaxed['nat']['type'] == 'raw' and relaxed['nat']['options'] is None
    assert relaxed['rules']['options']['mss']['type'] == 'raw'
    assert SPEC['nat']['type'] == 'dict'  # the original spec is untouched


class FakeModule(object):
    """The attributes of AnsibleModule that run() uses."""

    check_mode = False
    _diff = False

    def __init__(self, params):
        self.params = params
        self.exited = None

    def warn(self, warning):
        pass

    def exit_json(self, **result):
        self.exited = result


def test_every_result_names_the_namespace(monkeypatch):
    """conntrack_helper, conntrack_notrack and conntrack_sysctl return ``namespace`` through run(), like the
    modules that set it themselves."""
    monkeypatch.setattr(_runner, 'enter', lambda module: None)
    module = FakeModule({'namespace': 'ctpb-x'})
    _runner.run(module, lambda params, check_mode: {'changed': False})
    assert module.exited == {'changed': False, 'namespace': 'ctpb-x'}
    module = FakeModule({'namespace': None})
    _runner.run(module, lambda params, check_mode: {'changed': True, 'namespace': '/proc/1/ns/net'})
    assert module.exited['namespace'] == '/proc/1/ns/net'
