"""The collection as users get it: build the artifact, install it into an empty collections path, and check
what a user of Galaxy, AWX or ansible-navigator meets there. Needs root only for the smoke playbook, which
reads the table of a scratch network namespace (prefix ctpb) and changes nothing on the host.

What is checked: the artifact holds what users and ansible-test need and none of the development
scaffolding; ansible-doc renders every module, filter and role of the installed copy without a warning;
a playbook of FQCNs runs against the installed copy; every relative link of every Markdown file in the
installed copy resolves (file and #anchor); user docs do not speak of internal targets; ansible-builder
finds the collection's execution-environment requirements and creates a build context from it.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# ansible-galaxy, ansible-doc and ansible-playbook from another ansible-core (for example the oldest that
# meta/runtime.yml allows): NC_ANSIBLE_BIN=/path/to/venv/bin
ANSIBLE_BIN = os.environ.get('NC_ANSIBLE_BIN') or BIN
NAMESPACE = 'ctpb-smoke'

MUST_SHIP = ['README.md', 'COPYING', 'requirements.txt', 'bindep.txt', 'meta/runtime.yml',
             'meta/execution-environment.yml', 'CHANGELOG.rst', 'changelogs/changelog.yaml',
             'changelogs/config.yaml', 'tests/unit/requirements.txt', 'docs/troubleshooting.md',
             'docs/compatibility.md']
MUST_NOT_SHIP = ['Makefile', 'ansible.cfg', 'pytest.ini', 'requirements-dev.txt', '.ci', '.ansible-lint', 'scripts',
                 'bench', 'tests/lab', 'tests/integration', 'tests/artifact', 'tests/conftest.py', 'build', 'lab',
                 '.venv', '.collections']


def tool(name):
    return os.path.join(ANSIBLE_BIN if name.startswith('ansible-') and name != 'ansible-builder' else BIN, name)


def clean_env(collections_path):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith('ANSIBLE_'):
            del env[key]
    home = os.path.join(collections_path, '.home')
    if not os.path.isdir(home):
        os.makedirs(home)
        with open(os.path.join(home, 'ansible.cfg'), 'w') as handle:
            handle.write('[defaults]\n')
    env.update(ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
               ANSIBLE_CONFIG=os.path.join(home, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_HOME=home,
               ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'))
    return env


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp('artifact')
    subprocess.run([tool('ansible-galaxy'), 'collection', 'build', '--force', '--output-path', str(out), ROOT],
                   check=True, capture_output=True, text=True)
    (tarball,) = out.glob('netfilter-conntrack-*.tar.gz')
    return tarball


@pytest.fixture(scope='module')
def installed(artifact, tmp_path_factory):
    """(collections path, the installed collection's directory), installed offline from the artifact alone."""
    path = tmp_path_factory.mktemp('collections')
    subprocess.run([tool('ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(path), str(artifact)],
                   check=True, capture_output=True, text=True, env=clean_env(str(path)))
    return str(path), os.path.join(str(path), 'ansible_collections', 'netfilter', 'conntrack')


def test_the_artifact_ships_what_users_need_and_no_scaffolding(artifact):
    with tarfile.open(str(artifact)) as tar:
        names = set(tar.getnames())
    tops = set(n.split('/')[0] for n in names)
    for path in MUST_SHIP:
        assert path in names, path
    for path in MUST_NOT_SHIP:
        assert path not in names and not any(n.startswith(path + '/') for n in names), path
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    assert {'plugins', 'roles', 'playbooks', 'docs', 'meta', 'tests'} <= tops


def plugin_names(installed_dir, kind):
    if kind == 'module':
        return sorted(f[:-3] for f in os.listdir(os.path.join(installed_dir, 'plugins', 'modules'))
                      if f.endswith('.py') and not f.startswith('_'))
    if kind == 'filter':
        return sorted(f[:-4] for f in os.listdir(os.path.join(installed_dir, 'plugins', 'filter')) if f.endswith('.yml'))
    return sorted(os.listdir(os.path.join(installed_dir, 'roles')))


@pytest.mark.parametrize('kind', ['module', 'filter', 'role'])
def test_ansible_doc_renders_every_plugin_and_role(installed, kind):
    path, installed_dir = installed
    names = ['netfilter.conntrack.' + n for n in plugin_names(installed_dir, kind)]
    assert names
    env = clean_env(path)
    listed = subprocess.run([tool('ansible-doc'), '-t', kind, '-l', '--json', 'netfilter.conntrack'],
                            check=True, capture_output=True, text=True, env=env)
    assert sorted(json.loads(listed.stdout)) == names
    shown = subprocess.run([tool('ansible-doc'), '-t', kind, '--json'] + names,
                           capture_output=True, text=True, env=env, check=False)
    assert shown.returncode == 0, shown.stderr
    assert 'WARNING' not in shown.stderr, shown.stderr
    docs = json.loads(shown.stdout)
    assert sorted(docs) == names
    for name, doc in docs.items():
        if kind == 'role':
            assert doc['entry_points']['main']['short_description'], name
        else:
            assert doc['doc']['short_description'] and doc['doc']['version_added'], name
            if kind == 'module' and 'action' in doc['doc']['attributes']:
                # the roles' engines (action plugins running the modules): their result is the host's report
                assert set(doc['doc']['attributes']) == {'action', 'check_mode', 'diff_mode', 'platform'}, name
                assert doc['return'].get('report') and doc['return'].get('msg'), name
            elif kind == 'module':
                assert set(doc['doc']['attributes']) == {'check_mode', 'diff_mode', 'platform'}, name
                assert doc['return'].get('namespace'), name
    text = subprocess.run([tool('ansible-doc'), '-t', kind] + names, capture_output=True, text=True, env=env, check=False)
    assert text.returncode == 0 and 'WARNING' not in text.stderr, text.stderr


@pytest.fixture
def scratch_namespace():
    if os.geteuid() != 0:
        pytest.skip('the smoke playbook reads the table of a network namespace: needs root')
    subprocess.run(['ip', 'netns', 'delete', NAMESPACE], capture_output=True, check=False)
    subprocess.run(['ip', 'netns', 'add', NAMESPACE], check=True)
    try:
        yield NAMESPACE
    finally:
        subprocess.run(['ip', 'netns', 'delete', NAMESPACE], capture_output=True, check=False)


def test_smoke_playbook_of_fqcns_runs_against_the_installed_copy(installed, scratch_namespace, tmp_path):
    path, _installed_dir = installed
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {'smoke': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'smoke_namespace': scratch_namespace}}}}))
    run = subprocess.run([tool('ansible-playbook'), '-i', str(inventory),
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), 'smoke.yml')],
                         capture_output=True, text=True, env=clean_env(path), check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'failed=0' in run.stdout and 'changed=1' in run.stdout, run.stdout  # only the check-mode preview


LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)|^\s*\[[^\]]+\]:\s*(\S+)', re.M)
FENCE = re.compile(r'^(```|~~~).*?^\1', re.M | re.S)


def anchors(path):
    """The heading anchors of a Markdown file, as GitHub and most renderers make them."""
    with open(path) as handle:
        text = FENCE.sub('', handle.read())
    found = set()
    for heading in re.findall(r'^#{1,6}\s+(.*?)\s*#*\s*$', text, re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        base, n = slug, 1
        while slug in found:
            slug, n = '%s-%d' % (base, n), n + 1
        found.add(slug)
    return found


def markdown_files(top):
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            if name.endswith('.md'):
                yield os.path.join(dirpath, name)


def dead_links(top):
    dead = []
    for path in markdown_files(top):
        with open(path) as handle:
            text = FENCE.sub('', handle.read())
        text = re.sub(r'`[^`\n]*`', '', text)
        for match in LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I):  # https:, mailto:
                continue
            file_part, _sep, anchor = target.partition('#')
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            where = '%s: %s' % (os.path.relpath(path, top), target)
            if not os.path.exists(dest) or not os.path.realpath(dest).startswith(os.path.realpath(top)):
                dead.append(where + ' (no such file in the installed collection)')
            elif anchor and dest.endswith('.md') and anchor not in anchors(dest):
                dead.append(where + ' (no such heading)')
    return dead


def test_the_link_checker_finds_dead_links(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'a.md').write_text('# Top\n\n## Sub part: one\n\n[ok](#sub-part-one) [ok2](../README.md)\n'
                                            '[bad](#nothing) [gone](../bench/results/info.md) `[code](x.md)`\n')
    (tmp_path / 'README.md').write_text('[a](docs/a.md#top) [web](https://docs.ansible.com)\n[ref]: docs/b.md\n'
                                        '```\n[fenced](none.md)\n```\n')
    assert sorted(dead_links(str(tmp_path))) == [
        'README.md: docs/b.md (no such file in the installed collection)',
        'docs/a.md: #nothing (no such heading)',
        'docs/a.md: ../bench/results/info.md (no such file in the installed collection)',
    ]


def test_no_dead_relative_links_in_the_installed_copy(installed):
    _path, installed_dir = installed
    assert len(list(markdown_files(installed_dir))) > 5
    assert dead_links(installed_dir) == []


INTERNAL = re.compile(r'\bissue \d+\b|\b(PASS|MISS)\b|example\.invalid')


def test_user_docs_do_not_speak_of_internal_targets(installed):
    _path, installed_dir = installed
    found = []
    for path in list(markdown_files(installed_dir)) + [os.path.join(installed_dir, 'CHANGELOG.rst')]:
        with open(path) as handle:
            for number, line in enumerate(handle, 1):
                if INTERNAL.search(line):
                    found.append('%s:%d: %s' % (os.path.relpath(path, installed_dir), number, line.strip()))
    assert found == []


def test_execution_environment_requirements_are_found(installed):
    path, _installed_dir = installed
    run = subprocess.run([tool('ansible-builder'), 'introspect', '--sanitize', path],
                         capture_output=True, text=True, check=True)
    data = yaml.safe_load(run.stdout[run.stdout.index('python:') if 'python:' in run.stdout else 0:])
    assert [line.split('#')[0].strip() for line in data['python']] == ['jmespath']
    # managed-host packages carry the bindep profile "host", which an execution environment build does not select
    assert data['system'] and all('[host]' in line for line in data['system'])


def test_ansible_builder_creates_a_build_context(artifact, tmp_path):
    shutil.copy(str(artifact), str(tmp_path / artifact.name))
    (tmp_path / 'requirements.yml').write_text(yaml.safe_dump({'collections': [
        {'name': '/build/' + artifact.name, 'type': 'file'}]}))
    (tmp_path / 'execution-environment.yml').write_text(yaml.safe_dump({
        'version': 3,
        'images': {'base_image': {'name': 'localhost/ee-base:latest'}},
        'dependencies': {'galaxy': 'requirements.yml', 'ansible_core': {'package_pip': 'ansible-core>=2.16'},
                         'ansible_runner': {'package_pip': 'ansible-runner'}},
        'additional_build_files': [{'src': artifact.name, 'dest': 'collections'}],
        'additional_build_steps': {'prepend_galaxy': ['COPY _build/collections/%s /build/' % artifact.name]},
    }))
    context = tmp_path / 'context'
    run = subprocess.run([tool('ansible-builder'), 'create', '-f', 'execution-environment.yml', '-c', str(context)],
                         cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    (containerfile,) = [p for p in (context / 'Containerfile', context / 'Dockerfile') if p.exists()]  # podman/docker
    text = containerfile.read_text()
    assert 'ansible-galaxy collection install' in text and 'COPY _build/collections/%s' % artifact.name in text
    assert (context / '_build' / 'requirements.yml').exists()
    assert (context / '_build' / 'collections' / artifact.name).exists()
