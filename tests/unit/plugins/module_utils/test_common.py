"""exit_with_bulk: the result Ansible reads must be one valid JSON document, streamed or not."""
import json

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import (
    ConntrackError, exit_with_bulk, kernel_version)
from ansible_collections.netfilter.conntrack.plugins.module_utils._info import EntryStream


class FakeModule(object):
    """The part of AnsibleModule exit_with_bulk uses: exit_json prints one JSON document and exits."""

    def __init__(self, no_log_values=()):
        self.no_log_values = set(no_log_values)

    def exit_json(self, **result):
        result.setdefault('invocation', {'module_args': {}})
        print('\n' + json.dumps(result))
        raise SystemExit(0)


def run(capsys, module, result):
    with pytest.raises(SystemExit) as exc:
        exit_with_bulk(module, result)
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_plain_list_is_spliced(capsys):
    code, out = run(capsys, FakeModule(), {'count': 2, 'entries': [{'src': '192.0.2.1'}, {'src': '192.0.2.2'}]})
    assert code == 0
    assert out['entries'] == [{'src': '192.0.2.1'}, {'src': '192.0.2.2'}]
    assert out['count'] == 2 and 'invocation' in out


def test_stream_with_limit_has_trailer(capsys):
    stream = EntryStream(([{'id': i} for i in range(j, j + 100)] for j in range(0, 5000, 100)), limit=4450)
    code, out = run(capsys, FakeModule(), {'entries': stream})
    assert code == 0
    assert [e['id'] for e in out['entries']] == list(range(4450))
    assert out['matched'] == 5000 and out['truncated'] is True


def test_empty_stream(capsys):
    code, out = run(capsys, FakeModule(), {'entries': EntryStream(iter(()), limit=0)})
    assert code == 0 and out['entries'] == [] and out['matched'] == 0 and out['truncated'] is False


def test_error_mid_stream_ends_with_failed(capsys):
    def broken():
        for j in range(0, 2500, 500):
            yield [{'id': i} for i in range(j, j + 500)]
        raise ConntrackError('the kernel dropped netlink messages')

    code, out = run(capsys, FakeModule(), {'entries': EntryStream(broken(), limit=0)})
    assert code == 1
    assert out['failed'] is True and 'dropped' in out['msg']
    assert len(out['entries']) == 2500  # the complete chunks written before the error


def test_text_stream_is_written_as_it_is(capsys):
    stream = EntryStream(iter([['{"id": 0}', '{"id": 1}'], ['{"id": 2}']]), limit=0, text=True)
    code, out = run(capsys, FakeModule(), {'entries': stream})
    assert code == 0 and [e['id'] for e in out['entries']] == [0, 1, 2] and out['matched'] == 3
    stream = EntryStream(iter([['{"id": 0}', '{"id": 1}'], ['{"id": 2}']]), limit=0, text=True)
    code, out = run(capsys, FakeModule(no_log_values=['secret']), {'entries': stream})
    assert code == 0 and [e['id'] for e in out['entries']] == [0, 1, 2]


def test_no_log_values_take_ansibles_own_path(capsys):
    stream = EntryStream(iter([[{'id': 0}, {'id': 1}], [{'id': 2}]]), limit=0)
    code, out = run(capsys, FakeModule(no_log_values=['secret']), {'entries': stream})
    assert code == 0 and [e['id'] for e in out['entries']] == [0, 1, 2] and out['matched'] == 3


@pytest.mark.parametrize('release, want', [('6.18.44-fc', (6, 18)), ('5.10.0-21-amd64', (5, 10)), ('6.8', (6, 8)),
                                           ('garbage', (0, 0))])
def test_kernel_version(release, want):
    assert kernel_version(release) == want
