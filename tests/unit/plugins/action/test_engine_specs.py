"""The engines' argument specs, the roles' argument specs and defaults, and the modules' documentation agree."""
import pytest
import yaml

from ansible_collections.netfilter.conntrack.plugins.modules import conntrack_harden, conntrack_tune
from ansible_collections.netfilter.conntrack.plugins.module_utils._hardenspec import HARDEN_SPEC
from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_engine import TUNE_SPEC

from fleet_inputs import load

CASES = [('tuning', TUNE_SPEC, conntrack_tune), ('synflood_guard', HARDEN_SPEC, conntrack_harden)]


@pytest.mark.parametrize('role,spec,module', CASES)
def test_one_vocabulary(role, spec, module):
    role_spec = load('roles/%s/meta/argument_specs.yml' % role)['argument_specs']['main']['options']
    defaults = load('roles/%s/defaults/main.yml' % role)
    docs = yaml.safe_load(module.DOCUMENTATION)['options']
    docs = dict((name, option) for name, option in docs.items() if not name.startswith('_'))  # internal (_steps)
    assert set(spec) == set(role_spec) == set(defaults) == set(docs)
    for name, option in spec.items():
        for source in (role_spec[name], docs[name]):
            assert source['type'] == option['type'], name
            assert source.get('default') == option.get('default') == defaults[name], name
            assert source.get('choices') == option.get('choices'), name
            assert source.get('elements') == option.get('elements'), name


@pytest.mark.parametrize('role,spec,module', CASES)
def test_the_modules_docs_parse(role, spec, module):
    # conntrack_tune's module is documentation only; conntrack_harden's is the host-side half (_steps)
    assert hasattr(module, 'main') is (role == 'synflood_guard')
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)
