"""The tuning role and playbooks/tune.yml on a small fleet of namespace hosts (ctsy-*) and on the VM itself.

Lab hosts are network namespaces reached through a wrapper interpreter (ansible_connection=local), so to
Ansible they are hosts and to the kernel they are real tables: only per-namespace knobs can be applied
there, and the role must say so instead of failing. On the VM (the initial namespace) the role raises
nf_conntrack_max and the buckets under the global lock and everything is restored afterwards.
Assertions read the kernel (/proc inside each namespace) and the play recap, never timings.
"""
import json
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from lab import Lab  # noqa: E402
from test_conntrack_sysctl import BUCKETS, MAX, ns_read, read, restored  # noqa: E402

PY = os.path.join(ROOT, '.venv', 'bin', 'python')
PLAYBOOK = os.path.join(ROOT, 'playbooks', 'tune.yml')

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces, /proc/sys writes)')


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    """The project's lab (tests/lab/lab.py) with prefix ctsy: three namespace hosts h1..h3, always removed;
    plus a second inventory with the VM itself ('vm', initial namespace)."""
    directory = tmp_path_factory.mktemp('tuning')
    vm_inventory = directory / 'vm.ini'
    vm_inventory.write_text('[host]\nvm ansible_connection=local ansible_python_interpreter=%s\n' % PY)
    with Lab(prefix='ctsy', hosts=3) as lab:
        yield dict(hosts=list(lab.hosts), ns=dict((h, lab.namespace(h)) for h in lab.hosts),
                   inventory=lab.inventory_path, vm_inventory=str(vm_inventory), dir=directory)


def play(fleet, limit, *extra, playbook=PLAYBOOK, check=False, **variables):
    """Run a playbook; return (rc, output, {host: changed count}, {host: failed count})."""
    inventory = fleet['vm_inventory'] if limit == 'vm' else fleet['inventory']
    cmd = [os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), '-i', inventory, '-l', limit, playbook,
           '-e', json.dumps(variables)] + list(extra)
    if check:
        cmd += ['--check', '--diff']
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'build', 'src'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT, check=False)
    out = proc.stdout + proc.stderr
    changed, failed = {}, {}
    for host, ch, fa in re.findall(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)', out, re.M):
        changed[host], failed[host] = int(ch), int(fa)
    return proc.returncode, out, changed, failed


def lab_limit(fleet):
    return ','.join(fleet['hosts'])


def test_kubernetes_profile_on_the_lab_twice(fleet):
    rc, out, changed, failed = play(fleet, lab_limit(fleet), tuning_timeouts_profile='kubernetes',
                                    tuning_timeouts={'udp_timeout': '45s'})
    assert rc == 0, out[-5000:]
    assert all(changed[h] >= 1 for h in fleet['hosts']), changed
    for host in fleet['hosts']:
        assert ns_read(fleet['ns'][host], 'nf_conntrack_tcp_timeout_established') == 86400
        assert ns_read(fleet['ns'][host], 'nf_conntrack_tcp_timeout_close_wait') == 3600
        assert ns_read(fleet['ns'][host], 'nf_conntrack_udp_timeout') == 45
    # the lab's inventory sets tuning_persist=false (a string in INI): no 'not persisted' note is due then
    assert 'skipped (network namespace)' in out and 'boot-time files apply to the' not in out
    rc, out, changed, failed = play(fleet, lab_limit(fleet), tuning_timeouts_profile='kubernetes',
                                    tuning_timeouts={'udp_timeout': 45})
    assert rc == 0, out[-5000:]
    assert changed == dict((h, 0) for h in fleet['hosts']), out[-3000:]


def test_check_mode_changes_nothing_on_the_lab(fleet):
    before = [ns_read(fleet['ns'][h], 'nf_conntrack_tcp_timeout_established') for h in fleet['hosts']]
    rc, out, changed, failed = play(fleet, lab_limit(fleet), check=True, tuning_timeouts_profile='nat_gateway')
    assert rc == 0, out[-5000:]
    assert '+net.netfilter.nf_conntrack_tcp_timeout_established = 7440' in out
    assert [ns_read(fleet['ns'][h], 'nf_conntrack_tcp_timeout_established') for h in fleet['hosts']] == before


def test_refuses_max_below_the_count(fleet):
    host = fleet['hosts'][0]
    for i in range(5):
        subprocess.run(['ip', 'netns', 'exec', fleet['ns'][host], 'conntrack', '-I', '-p', 'udp', '-s', '198.51.100.1',
                        '-d', '198.51.100.%d' % (i + 2), '--sport', '1000', '--dport', '53', '-t', '120', '-u',
                        'SEEN_REPLY'], check=True, capture_output=True)
    try:
        before = ns_read(fleet['ns'][host], 'nf_conntrack_udp_timeout')
        rc, out, changed, failed = play(fleet, host, tuning_max=3, tuning_timeouts={'udp_timeout': 99})
        assert rc != 0 and failed.get(host) == 1
        assert 'refusing nf_conntrack_max 3: the table holds 5 entries' in out
        assert 'tuning_force_lower: true' in out
        assert ns_read(fleet['ns'][host], 'nf_conntrack_udp_timeout') == before  # refused before anything changed
    finally:
        subprocess.run(['ip', 'netns', 'exec', fleet['ns'][host], 'conntrack', '-F'], capture_output=True, check=False)


@pytest.mark.parametrize('variables,fragment', [
    (dict(tuning_max=-5), 'tuning_max is -5: give auto or a whole number'),
    (dict(tuning_max='lots'), 'tuning_max is "lots"'),
    (dict(tuning_max=True), 'tuning_max is true'),
    (dict(tuning_policy='fixed'), 'tuning_policy is fixed but tuning_max is auto'),
    (dict(tuning_buckets='many'), 'tuning_buckets is "many"'),
    (dict(tuning_bucket_ratio=0), 'tuning_bucket_ratio (0) 1 or more'),
    (dict(tuning_timeouts_profile='fast'), 'tuning_timeouts_profile'),
    (dict(tuning_timeouts={'udp_timeout': '5x'}), "unknown unit 'x'"),
    (dict(tuning_timeouts={'udp_timeout': -1}), 'out of range'),
    (dict(tuning_timeouts={'nf_conntrack_count': 1}), 'read-only'),
    (dict(tuning_timeouts={'udp_timeot': 30}), "unknown conntrack knob 'udp_timeot'"),
])
def test_bad_input_is_refused_and_changes_nothing(fleet, variables, fragment):
    host = fleet['hosts'][1]
    before = [ns_read(fleet['ns'][host], n) for n in ('nf_conntrack_udp_timeout', 'nf_conntrack_tcp_timeout_established')]
    rc, out, changed, failed = play(fleet, host, **variables)
    assert rc != 0 and failed.get(host) == 1, out[-3000:]
    assert fragment in out, out[-3000:]
    assert [ns_read(fleet['ns'][host], n) for n in ('nf_conntrack_udp_timeout', 'nf_conntrack_tcp_timeout_established')] == before


REPORT_PLAY = '''
- name: Tune and save the report
  hosts: all
  gather_facts: false
  roles:
    - role: netfilter.conntrack.tuning
  tasks:
    - name: Save the report of this host
      ansible.builtin.copy:
        content: "{{ tuning_report | to_json }}"
        dest: "%s/{{ inventory_hostname }}.json"
        mode: "0644"
      changed_when: false
'''


def test_initial_namespace_raises_max_and_buckets_persists_and_restores(fleet):
    playbook = fleet['dir'] / 'report.yml'
    playbook.write_text(REPORT_PLAY % fleet['dir'])
    sysctl_file = str(fleet['dir'] / 'sysctl.d' / '90-netfilter-conntrack.conf')
    with restored(MAX, BUCKETS) as orig:
        want = orig[MAX] + 4096
        variables = dict(tuning_max=want, tuning_sysctl_file=sysctl_file, tuning_timeouts={'generic_timeout': 600})
        rc, out, changed, failed = play(fleet, 'vm', playbook=str(playbook), **variables)
        assert rc == 0, out[-5000:]
        assert read(MAX) == want
        assert read(BUCKETS) == want  # ratio 1, want is a multiple of 512
        report = json.load(open(str(fleet['dir'] / 'vm.json')))
        assert report['global_knobs'] == 'applied' and report['max'] == want and report['buckets'] == want
        assert report['persisted'] == sysctl_file and report['headroom'] == want - report['count']
        text = open(sysctl_file).read()
        assert 'net.netfilter.nf_conntrack_max = %d\n' % want in text
        assert 'net.netfilter.nf_conntrack_buckets = %d\n' % want in text
        assert oct(os.stat(sysctl_file).st_mode & 0o777) == '0o644'
        rc, out, changed, failed = play(fleet, 'vm', playbook=str(playbook), **variables)
        assert rc == 0 and changed['vm'] == 0, out[-3000:]
        # auto with raise-only never lowers what the host has now
        rc, out, changed, failed = play(fleet, 'vm', playbook=str(playbook), tuning_sysctl_file=sysctl_file,
                                        tuning_policy='per_core')
        assert rc == 0 and changed['vm'] == 0 and read(MAX) == want, out[-3000:]
    assert read(MAX) == orig[MAX] and read(BUCKETS) == orig[BUCKETS]
