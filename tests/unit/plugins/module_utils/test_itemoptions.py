"""ItemOptions: the items of conntrack_entry's ``entries`` checked like ansible-core's nested options would."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from hypothesis import given, settings, strategies as st

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._entryspec import item_argspec
from ansible_collections.netfilter.conntrack.plugins.module_utils._itemoptions import ItemOptions

SPEC = dict(
    name=dict(type='str'),
    port=dict(type='int'),
    flags=dict(type='list', elements='str'),
    raw=dict(type='raw'),
    mode=dict(type='str', choices=['add', 'remove']),
    kinds=dict(type='list', elements='str', choices=['a', 'b']),
    enabled=dict(type='bool'),
    nat=dict(type='dict', options=dict(address=dict(type='str', required=True), port=dict(type='int'))),
)
CHECK = ItemOptions(SPEC, 'entries')


def test_a_typed_item_is_returned_as_it_is():
    item = {'name': 'x', 'port': 80, 'flags': ['A'], 'raw': {'k': 1}, 'nat': {'address': '192.0.2.1'}}
    assert CHECK(item, 0) is item


def test_conversions_as_ansible_core_makes_them():
    got = CHECK({'port': '80', 'flags': 'A,B', 'enabled': 'yes', 'nat': 'address=192.0.2.1 port=8080',
                 'name': 5, 'mode': None}, 2)
    assert got == {'port': 80, 'flags': ['A', 'B'], 'enabled': True, 'nat': {'address': '192.0.2.1', 'port': 8080},
                   'name': '5', 'mode': None}
    assert CHECK({'port': 80.0}, 0) == {'port': 80}
    assert CHECK({'nat': '{"address": "2001:db8::1"}'}, 0) == {'nat': {'address': '2001:db8::1'}}


@pytest.mark.parametrize('item, option, words', [
    ({'nope': 1}, 'entries[3].nope', ('no such option', 'port')),
    ({'port': 'eighty'}, 'entries[3].port', ("'eighty'", 'whole number')),
    ({'port': True}, 'entries[3].port', ('True', 'not a boolean')),
    ({'port': 1.5}, 'entries[3].port', ('1.5', 'whole number')),
    ({'port': float('inf')}, 'entries[3].port', ('inf', 'whole number')),
    ({'port': 'Infinity'}, 'entries[3].port', ('Infinity', 'whole number')),
    ({'name': ['a']}, 'entries[3].name', ("['a']", 'a string')),
    ({'mode': 'keep'}, 'entries[3].mode', ("'keep'", 'add, remove')),
    ({'kinds': ['a', 'c']}, 'entries[3].kinds[1]', ("'c'", 'a, b')),
    ({'flags': [['x']]}, 'entries[3].flags[0]', ("['x']", 'a string')),
    ({'flags': {'x': 1}}, 'entries[3].flags', ('a list',)),
    ({'enabled': 'maybe'}, 'entries[3].enabled', ("'maybe'", 'boolean')),
    ({'nat': {'port': 1}}, 'entries[3].nat.address', ('required',)),
    ({'nat': {'address': '192.0.2.1', 'extra': 1}}, 'entries[3].nat.extra', ('no such option', 'address, port')),
    ({'nat': {'address': '192.0.2.1', 'port': 'x'}}, 'entries[3].nat.port', ("'x'", 'whole number')),
    ({'nat': 7}, 'entries[3].nat', ('7', 'a dictionary')),
])
def test_refusals_name_the_item_the_option_the_value_and_what_is_allowed(item, option, words):
    with pytest.raises(ConntrackError) as caught:
        CHECK(item, 3)
    assert caught.value.option == option
    assert caught.value.msg.startswith(option)
    for word in words:
        assert word in caught.value.msg


@pytest.mark.parametrize('item', [5, 'text', ['a'], None])
def test_an_item_that_is_no_dictionary(item):
    with pytest.raises(ConntrackError) as caught:
        CHECK(item, 0)
    assert caught.value.option == 'entries[0]'
    assert 'dictionary' in caught.value.msg


def test_the_entry_item_spec_is_supported():
    check = ItemOptions(item_argspec(), 'entries')
    item = {'proto': 'tcp', 'src': '192.0.2.1', 'dst': '198.51.100.1', 'sport': 1, 'dport': 2, 'timeout': 5,
            'status': ['ASSURED'], 'nat_src': {'address': '203.0.113.1'}, 'labels': [1, 'web'], 'id': 77}
    assert check(item, 0) is item


# --- differential: against ansible-core's own validation of the same spec as nested options -------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40),
                    st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.sampled_from(['', '0', '80', ' 12 ', '1.0', '1.5', 'yes', 'no', 'true', 'off', 'x', 'a,b',
                                     'add', 'remove', 'a', 'b', 'address=192.0.2.1', '{"address": "x"}']))
SUB_ITEMS = st.dictionaries(st.sampled_from(['address', 'port']), SCALARS, max_size=2)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), SUB_ITEMS)
ITEMS = st.dictionaries(st.sampled_from(sorted(SPEC)), VALUES, max_size=4)


def ansible_core(item):
    """(ok, value) of ansible-core checking [item] as ``entries`` with the nested options."""
    validator = ArgumentSpecValidator({'entries': dict(type='list', elements='dict', options=SPEC)})
    try:
        result = validator.validate({'entries': [item]})
    except (TypeError, ValueError, AttributeError):
        return False, None  # ansible-core raises on some values (a number for a dict with options): a refusal
    if result.error_messages:
        return False, None
    return True, result.validated_parameters['entries'][0]


def ours(item):
    try:
        return True, CHECK(item, 0)
    except ConntrackError:
        return False, None


# where this check is stricter than ansible-core on purpose (ansible-core takes these, meaning no harm)
def deliberate(item, spec=None):
    spec = SPEC if spec is None else spec
    for name, value in item.items():
        kind = spec[name]['type']
        if kind == 'dict' and isinstance(value, dict) and deliberate(
                dict((k, v) for k, v in value.items() if k in spec[name]['options']), spec[name]['options']):
            return True
        values = value if isinstance(value, list) else [value]
        if kind == 'int' and isinstance(value, bool):
            return True  # a boolean as a number
        if kind == 'str' and isinstance(value, (dict, list)) or \
                kind == 'list' and any(isinstance(v, (dict, list)) for v in values):
            return True  # a container turned into its repr
        if kind == 'list' and isinstance(value, (int, float, bool)):
            return True  # ansible-core makes [str(value)] of a number, then checks the element
        if kind == 'dict' and isinstance(value, dict) and 'address' in value and value['address'] is None:
            return True  # ansible-core takes None for a required sub-option (the key is there): here it is missing
        if value is None and spec[name].get('choices'):
            return True  # ansible-core checks an item's None against the choices and refuses it: here None is unset
        if kind == 'dict' and isinstance(value, str):
            return True  # key=value text: ansible-core's own parser has other rules for quotes and commas
    return False


@settings(max_examples=600, deadline=None)
@given(ITEMS)
def test_same_verdict_and_value_as_ansible_core(item):
    theirs_ok, theirs = ansible_core(item)
    ours_ok, mine = ours(item)
    if deliberate(item):
        return
    assert ours_ok == theirs_ok, (item, theirs, mine)
    if ours_ok:
        # ansible-core fills absent options with None; this check leaves them out
        assert set_values(theirs) == set_values(mine), item


def set_values(item):
    return dict((k, set_values(v) if isinstance(v, dict) else v) for k, v in item.items() if v is not None)
