"""Shared fixtures of the integration tests: the namespace lab and ways to run the collection."""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from lab import Lab  # noqa: E402  pylint: disable=wrong-import-position

VENV_BIN = os.path.join(ROOT, '.venv', 'bin')


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason='integration tests need root (network namespaces, the real kernel)')
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def installed_collection():
    """The collection built and installed into .collections, as users get it (once per session)."""
    subprocess.run([os.path.join(ROOT, 'scripts', 'install-collection')], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, '.collections')


@pytest.fixture(scope='session')
def lab():
    """A 3-host lab with real traffic, removed at the end of the session whatever happens."""
    the_lab = Lab(prefix='ctt', hosts=3)
    try:
        the_lab.up()
        the_lab.traffic()
        yield the_lab
    finally:
        the_lab.down()


def ansible_env(collections):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_NOCOLOR='1', ANSIBLE_DEPRECATION_WARNINGS='0')
    return env


HOST_LINE = re.compile(r'^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!) => \{$')


def parse_adhoc(text):
    """{host: result} from the default callback's ad-hoc output with result_format=json."""
    results = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = HOST_LINE.match(lines[i])
        if not match:
            i += 1
            continue
        body = ['{']
        i += 1
        while i < len(lines) and lines[i] != '}':
            body.append(lines[i])
            i += 1
        body.append('}')
        results[match.group(1)] = json.loads('\n'.join(body))
        i += 1
    return results


@pytest.fixture
def ansible_adhoc(installed_collection):
    """Run ``ansible PATTERN -m MODULE -a ARGS -i INVENTORY``; return (rc, {host: result}, output)."""
    def run(pattern, module, args, inventory, extra=()):
        env = ansible_env(installed_collection)
        env.update(ANSIBLE_CALLBACK_RESULT_FORMAT='json')
        proc = subprocess.run([os.path.join(VENV_BIN, 'ansible'), pattern, '-i', inventory, '-m', module,
                               '-a', args] + list(extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        return proc.returncode, parse_adhoc(proc.stdout), proc.stdout + proc.stderr
    return run


@pytest.fixture
def ansible_playbook(installed_collection):
    """Run a playbook; return the CompletedProcess (text output)."""
    def run(path, inventory, extravars=None, extra=()):
        argv = [os.path.join(VENV_BIN, 'ansible-playbook'), '-i', inventory, os.path.join(ROOT, path)]
        for key, value in (extravars or {}).items():
            argv += ['-e', '%s=%s' % (key, value)]
        return subprocess.run(argv + list(extra), env=ansible_env(installed_collection), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    return run
