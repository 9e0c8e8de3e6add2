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
    assert module.exited['changed'] is False and module.exited['namespace'] == 'ctpb-x'
    module = FakeModule({'namespace': None})
    _runner.run(module, lambda params, check_mode: {'changed': True, 'namespace': '/proc/1/ns/net'})
    assert module.exited['namespace'] == '/proc/1/ns/net'


def _module_with(params, capsys, monkeypatch):
    """A real AnsibleModule built by new_module on ``params`` (as the module process gets them)."""
    import json
    from ansible.module_utils import basic
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': params}).encode())
    if hasattr(basic, '_ANSIBLE_PROFILE'):
        monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy')
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, 'log', lambda self, msg, log_args=None: logged.append(msg))
    module = _runner.new_module(dict(items=dict(type='list', elements='dict'), name=dict(type='str')))
    return module, logged


def test_a_long_list_is_read_once_not_copied_and_logged_as_its_length(capsys, monkeypatch):
    items = [{'n': i} for i in range(_runner.BULK_ITEMS + 1)]
    module, logged = _module_with({'items': items, 'name': 'x'}, capsys, monkeypatch)
    assert module.params['items'] == items and module.params['name'] == 'x'
    assert len(logged) == 1 and '(a list of %d items)' % len(items) in logged[0] and "'n': 5" not in logged[0]
    with pytest.raises(SystemExit):
        _runner.fail(module, _runner.ConntrackError('items[3].n: bad', option='items[3].n'))
    import json
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] and out['msg'] == 'items[3].n: bad'
    assert out['invocation']['module_args']['items'] == '(a list of %d items)' % len(items)


def test_a_short_list_is_logged_as_it_is(capsys, monkeypatch):
    _module, logged = _module_with({'items': [{'n': 1}]}, capsys, monkeypatch)
    assert "'n': 1" in logged[0]


def test_a_long_text_is_logged_and_echoed_as_its_first_line_and_length(capsys, monkeypatch):
    text = 'NFCT-SAVED 1 3 99 abc\n' + 'Q' * _runner.BULK_TEXT
    module, logged = _module_with({'name': text}, capsys, monkeypatch)
    assert module.params['name'] == text
    shown = 'NFCT-SAVED 1 3 99 abc... (a text of %d characters)' % len(text)
    assert len(logged) == 1 and shown in logged[0] and 'QQQQ' not in logged[0]
    with pytest.raises(SystemExit):
        _runner.fail(module, _runner.ConntrackError('name: bad', option='name'))
    import json
    assert json.loads(capsys.readouterr().out)['invocation']['module_args']['name'] == shown
    short = _runner._invocation_args({'name': 'x' * _runner.BULK_TEXT})  # pylint: disable=protected-access
    assert short['name'] == 'x' * _runner.BULK_TEXT
