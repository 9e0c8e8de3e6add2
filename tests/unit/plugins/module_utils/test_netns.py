"""namespace option: name/path mapping and the messages for namespaces that cannot be entered."""
import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _netns
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError


def test_names_and_paths():
    assert _netns.namespace_path(None) is None
    assert _netns.namespace_path('') is None
    assert _netns.namespace_path('blue') == '/run/netns/blue'
    assert _netns.namespace_path('/proc/42/ns/net') == '/proc/42/ns/net'


@pytest.mark.parametrize('bad', ['.', '..', 'a\0b'])
def test_invalid_names(bad):
    with pytest.raises(ConntrackError) as exc:
        _netns.namespace_path(bad)
    assert exc.value.option == 'namespace'


def test_missing_namespace_lists_what_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(_netns, 'NETNS_RUN_DIR', str(tmp_path))
    (tmp_path / 'red').write_text('')
    with pytest.raises(ConntrackError) as exc:
        _netns.enter_namespace('blue')
    assert "namespace 'blue' does not exist" in exc.value.msg and 'red' in exc.value.msg


def test_not_a_namespace_file(tmp_path):
    path = tmp_path / 'plain'
    path.write_text('')
    with pytest.raises(ConntrackError) as exc:
        _netns.enter_namespace(str(path))
    assert 'not a network namespace' in exc.value.msg or 'cannot enter' in exc.value.msg


@pytest.mark.parametrize('value', ['ct\x00x', '/tmp/x\x00y', 'name\n', '/proc/1/ns/net\t', 'a\x7fb'])
def test_control_characters_are_refused_before_any_open(value):
    with pytest.raises(ConntrackError) as info:
        _netns.namespace_path(value)
    assert info.value.option == 'namespace' and 'control character' in info.value.msg
