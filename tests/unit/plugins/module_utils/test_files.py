"""_files: atomic writes, undo, and the SELinux context of replaced files (a fake libselinux binding)."""
import os

import pytest

from ansible_collections.netfilter.conntrack.plugins.module_utils import _files
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError


def test_write_replace_and_rollback(tmp_path):
    path = str(tmp_path / 'd' / 'f.conf')
    changes = _files.FileChanges()
    changes.write(path, 'one\n', option='sysctl_file')
    assert _files.read_file(path) == 'one\n' and _files.file_mode(path) == 0o644
    changes.write(path, 'two\n')
    other = str(tmp_path / 'other')
    open(other, 'w').write('keep\n')
    changes.remove(other)
    assert changes.rollback() == []
    assert not os.path.exists(path) and _files.read_file(other) == 'keep\n'


@pytest.mark.parametrize('path', ['', 'a\x00b'])
def test_unusable_paths_name_the_option(path):
    with pytest.raises(ConntrackError) as info:
        _files.atomic_write(path, 'x', option='persist_file')
    assert info.value.option == 'persist_file'


class FakeSelinux(object):
    def __init__(self, enabled):
        self.enabled = enabled
        self.set = []

    def is_selinux_enabled(self):
        return self.enabled

    def lgetfilecon_raw(self, path):
        return 0, 'system_u:object_r:system_conf_t:s0'

    def lsetfilecon(self, path, context):
        self.set.append((os.path.basename(path).startswith('.'), context))


@pytest.mark.parametrize('enabled,expected', [(1, [(True, 'system_u:object_r:system_conf_t:s0')]), (0, [])])
def test_a_replaced_file_keeps_its_selinux_context(tmp_path, monkeypatch, enabled, expected):
    fake = FakeSelinux(enabled)
    monkeypatch.setattr(_files, 'selinux', fake)
    path = str(tmp_path / 'f.conf')
    _files.atomic_write(path, 'one\n')      # new file: nothing to keep
    assert fake.set == []
    _files.atomic_write(path, 'two\n')      # replaced: the temporary file gets the old context
    assert fake.set == expected


def test_without_libselinux_nothing_is_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, 'selinux', None)
    path = str(tmp_path / 'f.conf')
    _files.atomic_write(path, 'one\n')
    _files.atomic_write(path, 'two\n')
    assert _files.read_file(path) == 'two\n'


def test_undo_names_what_could_not_be_put_back(tmp_path, monkeypatch):
    path = str(tmp_path / 'f.conf')
    changes = _files.FileChanges()
    changes.write(path, 'new\n', option='persist_file')

    def busy(*args, **kwargs):
        raise ConntrackError('busy')
    monkeypatch.setattr(_files, 'remove_file', busy)
    exc = changes.undo(ConntrackError('applying the table failed', option='rules'))
    assert exc.option == 'rules' and 'could not be put back' in exc.msg and path in exc.msg
