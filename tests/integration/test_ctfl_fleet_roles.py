"""The one-task roles at fleet scale (issue 13) on a lab of namespace hosts (prefix ctfl) and on the VM itself.

The roles run one task per host (their engines, the conntrack_tune and conntrack_harden actions), which read once
(conntrack_info), apply once (conntrack_sysctl, and conntrack_notrack for synflood_guard) and verify from those
calls' own results. These tests check what the kernel shows afterwards (/proc inside each
namespace, the nft table, the sysctl.d file), that the roles still refuse and fail where they must, that a second
run changes nothing, that the default output is one line per host with the fleet callback, and that
synflood_guard's headroom variables no longer outlive its include (issue 14: set_fact made them host facts).
"""
import json
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from globallock import restored_sysctl  # noqa: E402
from lab import Lab  # noqa: E402

PY = os.path.join(ROOT, '.venv', 'bin', 'python')
MAX = '/proc/sys/net/netfilter/nf_conntrack_max'

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces, /proc/sys writes)')


@pytest.fixture(scope='module')
def fleet(tmp_path_factory):
    directory = tmp_path_factory.mktemp('ctfl')
    vm_inventory = directory / 'vm.ini'
    vm_inventory.write_text('[host]\nvm ansible_connection=local ansible_python_interpreter=%s\n' % PY)
    with Lab(prefix='ctfl', hosts=3) as lab:
        yield dict(lab=lab, hosts=list(lab.hosts), inventory=lab.inventory_path, vm_inventory=str(vm_inventory),
                   dir=directory)


def play(fleet, playbook, limit=None, callback='netfilter.conntrack.fleet', check=False, inventory=None, verbose=False,
         **variables):
    """Run a playbook; return (rc, output)."""
    cmd = [os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), '-i', inventory or fleet['inventory'], playbook,
           '-e', json.dumps(variables)]
    if verbose:
        cmd += ['-v']
    if limit:
        cmd += ['-l', limit]
    if check:
        cmd += ['--check']
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'build', 'src'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', ANSIBLE_STDOUT_CALLBACK=callback)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def recap(out):
    match = re.search(r'^RECAP (\d+) hosts: (\d+) changed \((\d+) tasks\), (\d+) failed', out, re.M)
    assert match, out[-3000:]
    return dict(hosts=int(match.group(1)), changed_hosts=int(match.group(2)), changed=int(match.group(3)),
                failed=int(match.group(4)))


def ns_read(fleet, host, knob):
    return int(fleet['lab'].exec(host, ['cat', '/proc/sys/net/netfilter/' + knob]).stdout)


def host_lines(out, host):
    return [line for line in out.splitlines() if line.startswith(host + ':') or (' %s ' % host) in line]


TUNE = os.path.join(ROOT, 'playbooks', 'tune.yml')
HARDEN = os.path.join(ROOT, 'playbooks', 'harden.yml')


def test_tune_applies_in_one_call_verifies_and_says_one_line_per_host(fleet):
    rc, out = play(fleet, TUNE, tuning_timeouts_profile='nat_gateway', tuning_timeouts={'udp_timeout': 44})
    assert rc == 0, out[-4000:]
    for host in fleet['hosts']:
        assert ns_read(fleet, host, 'nf_conntrack_tcp_timeout_established') == 7440
        assert ns_read(fleet, host, 'nf_conntrack_udp_timeout') == 44
        lines = host_lines(out, host)
        assert len(lines) == 1, out  # one line per host by default
        assert 'changed ' in lines[0] and 'udp_timeout 30->44' in lines[0] and 'table ' in lines[0]
    assert 'tuning: 3 hosts, 3 changed, 0 failed or refused' in out
    assert 'global knobs skipped (network namespace)' in out
    assert len([line for line in out.splitlines() if 'network namespace' in line]) == 1  # said once, not per host
    assert recap(out)['changed'] == 3  # one changing task per host: the one conntrack_sysctl call
    rc, out = play(fleet, TUNE, tuning_timeouts_profile='nat_gateway', tuning_timeouts={'udp_timeout': '44s'})
    assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]
    assert all('no change' in host_lines(out, h)[0] for h in fleet['hosts'])


def test_the_detailed_report_is_behind_verbosity_or_a_variable(fleet):
    host = fleet['hosts'][0]
    rc, out = play(fleet, TUNE, limit=host, tuning_report_detail=True)
    assert rc == 0, out[-4000:]
    line = host_lines(out, host)[0]
    report = json.loads(line.split(': ', 1)[1])
    assert report['global_knobs'] == 'skipped (network namespace)' and report['in_force'] in (True, None)
    assert report['netns_inode'] == os.stat('/run/netns/%s' % fleet['lab'].namespace(host)).st_ino
    # the default callback: the host's ok/changed line and its recap line, the report only with -v (or the detail)
    rc, out = play(fleet, TUNE, limit=host, callback='default')
    assert rc == 0 and '"max_wanted"' not in out and 'max_wanted' not in out
    assert [line for line in out.splitlines() if line in ('ok: [%s]' % host, 'changed: [%s]' % host)], out
    assert len([line for line in out.splitlines() if line.startswith(('ok: [%s]' % host, 'changed: [%s]' % host))]) == 2
    assert len(re.findall(r'^%s\s+: ok=' % re.escape(host), out, re.M)) == 1  # and its recap line
    rc, out = play(fleet, TUNE, limit=host, callback='default', verbose=True)
    assert rc == 0 and 'max_wanted' in out and 'table ' in out, out[-3000:]


def test_refused_lowering_fails_before_anything_changes(fleet):
    host = fleet['hosts'][1]
    lab = fleet['lab']
    for i in range(5):
        lab.exec(host, ['conntrack', '-I', '-p', 'udp', '-s', '198.51.100.1', '-d', '198.51.100.%d' % (i + 2),
                        '--sport', '1000', '--dport', '53', '-t', '120', '-u', 'SEEN_REPLY'])
    try:
        before = ns_read(fleet, host, 'nf_conntrack_udp_timeout')
        rc, out = play(fleet, TUNE, limit=host, tuning_max=3, tuning_timeouts={'udp_timeout': 99})
        assert rc != 0 and recap(out)['failed'] == 1, out[-3000:]
        assert 'refusing nf_conntrack_max 3' in out and 'tuning_force_lower: true' in out
        assert ns_read(fleet, host, 'nf_conntrack_udp_timeout') == before
        assert len([line for line in out.splitlines() if 'refusing' in line]) == 1  # one line, no dump
    finally:
        lab.exec(host, ['conntrack', '-F'], check=False)


def test_a_host_near_full_warns_with_the_levers_and_the_summary_names_it(fleet):
    rc, out = play(fleet, TUNE, tuning_warn_percent=0)
    assert rc == 0, out[-3000:]
    for host in fleet['hosts']:
        line = host_lines(out, host)[0]
        assert 'WARNING table' in line and 'per-namespace timeouts' in line and 'targeted conntrack_flush' in line
        assert 'raise nf_conntrack_max on the machine that hosts it' in line
    assert 'near the limit: %s:' % fleet['hosts'][0] in out


def test_the_sysctl_file_is_persisted_and_verified_on_the_vm(fleet):
    sysctl_file = str(fleet['dir'] / 'sysctl.d' / '90-netfilter-conntrack.conf')
    with restored_sysctl(MAX) as original:
        variables = dict(tuning_max=int(original), tuning_buckets='keep', tuning_sysctl_file=sysctl_file)
        rc, out = play(fleet, TUNE, inventory=fleet['vm_inventory'], **variables)
        assert rc == 0, out[-4000:]
        assert 'net.netfilter.nf_conntrack_max = %s\n' % original in open(sysctl_file).read()
        assert 'persisted' in host_lines(out, 'vm')[0] and recap(out)['changed'] == 1  # the file, not the kernel
        rc, out = play(fleet, TUNE, inventory=fleet['vm_inventory'], **variables)
        assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]
        assert open(MAX).read().strip() == original


def test_harden_in_one_task_is_verified_and_idempotent(fleet):
    rc, out = play(fleet, HARDEN)
    assert rc == 0, out[-4000:]
    lab = fleet['lab']
    for host in fleet['hosts']:
        assert ns_read(fleet, host, 'nf_conntrack_tcp_loose') == 0
        assert ns_read(fleet, host, 'nf_conntrack_tcp_timeout_syn_recv') == 30
        table = lab.exec(host, ['nft', 'list', 'table', 'inet', 'netfilter_conntrack']).stdout
        assert 'synproxy' in table and '8080' in table
        assert len(host_lines(out, host)) == 1 and 'synproxy ports 8080' in host_lines(out, host)[0]
    rc, out = play(fleet, HARDEN)
    assert rc == 0 and recap(out)['changed'] == 0, out[-4000:]
    rc, out = play(fleet, HARDEN, synflood_guard_state='absent')
    assert rc == 0, out[-4000:]
    for host in fleet['hosts']:
        assert ns_read(fleet, host, 'nf_conntrack_tcp_loose') == 1
        assert lab.exec(host, ['nft', 'list', 'table', 'inet', 'netfilter_conntrack'], check=False).returncode != 0


def test_synflood_refusals_fail_before_any_change(fleet):
    host = fleet['hosts'][2]
    before = ns_read(fleet, host, 'nf_conntrack_tcp_loose')
    rc, out = play(fleet, HARDEN, limit=host, __synflood_guard_kernel_overrides={'synproxy': False})
    assert rc != 0 and 'has no nft SYNPROXY' in out, out[-3000:]
    rc, out = play(fleet, HARDEN, limit=host, synflood_guard_ports=[70000])
    assert rc != 0 and 'out of range: 70000' in out, out[-3000:]
    assert ns_read(fleet, host, 'nf_conntrack_tcp_loose') == before


HEADROOM_PLAY = '''
- name: Harden with headroom, the play has its own tuning_max
  hosts: vm
  gather_facts: false
  vars:
    tuning_max: auto
  roles:
    - role: netfilter.conntrack.synflood_guard
      vars:
        synflood_guard_mode: sysctl_only
        synflood_guard_persist: false
        synflood_guard_headroom: true
        synflood_guard_headroom_vars: {tuning_max: 4194304, tuning_buckets: keep, tuning_persist: false}
  post_tasks:
    - name: The play's tuning_max is still the play's
      ansible.builtin.assert:
        that:
          - tuning_max == 'auto'
          - hostvars[inventory_hostname].tuning_max is not defined
          - hostvars[inventory_hostname].tuning_buckets is not defined

- name: A later play of the same run
  hosts: vm
  gather_facts: false
  tasks:
    - name: No tuning_* host fact outlived the include
      ansible.builtin.assert:
        that:
          - tuning_max is not defined
          - hostvars[inventory_hostname].tuning_persist is not defined
'''


def test_headroom_vars_do_not_outlive_the_include(fleet):
    """Check mode on the VM: nothing is written, the headroom include runs with the caller's values only."""
    playbook = fleet['dir'] / 'headroom.yml'
    playbook.write_text(HEADROOM_PLAY)
    rc, out = play(fleet, str(playbook), inventory=fleet['vm_inventory'], check=True)
    assert rc == 0, out[-5000:]
    assert re.search(r'headroom would change max \d+->4194304', host_lines(out, 'vm')[0]), out[-3000:]
    assert recap(out)['failed'] == 0


FAILING_NFT = '''#!/bin/sh
# nft for the ctfl test: reads and checks pass through, the change itself is refused (after the knobs were set)
for arg in "$@"; do [ "$arg" = "-c" ] && exec %(nft)s "$@"; done
if [ "$1" = "-f" ]; then cat >/dev/null; echo "Error: refused by the ctfl test" >&2; exit 1; fi
exec %(nft)s "$@"
'''

FAILING_PLAY = '''
- name: Harden while nft refuses the change
  hosts: %(host)s
  gather_facts: false
  environment:
    PATH: "%(bin)s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  roles:
    - role: netfilter.conntrack.synflood_guard
      vars:
        synflood_guard_ports: [8081]
        synflood_guard_persist: false
'''


def test_a_failing_rules_change_puts_the_knobs_back(fleet):
    """All or nothing on the real kernel: the knobs are set, then nft refuses the rules; the task fails naming what
    it put back, and every knob reads as before (the change happens in one module process on the host)."""
    host = fleet['hosts'][1]
    knobs = ('nf_conntrack_tcp_loose', 'nf_conntrack_tcp_timeout_syn_recv', 'nf_conntrack_tcp_timeout_syn_sent')
    rc, out = play(fleet, HARDEN, limit=host, synflood_guard_state='absent', synflood_guard_persist=False)
    assert rc == 0, out[-3000:]
    before = dict((knob, ns_read(fleet, host, knob)) for knob in knobs)
    assert before['nf_conntrack_tcp_loose'] == 1
    directory = fleet['dir'] / 'failing-nft'
    directory.mkdir()
    nft = directory / 'nft'
    real = subprocess.run(['sh', '-c', 'command -v nft'], capture_output=True, text=True, check=True).stdout.strip()
    nft.write_text(FAILING_NFT % {'nft': real})
    nft.chmod(0o755)
    playbook = fleet['dir'] / 'failing.yml'
    playbook.write_text(FAILING_PLAY % {'host': host, 'bin': str(directory)})
    rc, out = play(fleet, str(playbook))
    assert rc != 0, out[-3000:]
    assert 'refused by the ctfl test' in out and 'put back what the steps before it changed (sysctl)' in out, out[-3000:]
    assert dict((knob, ns_read(fleet, host, knob)) for knob in knobs) == before
    table = fleet['lab'].exec(host, ['nft', 'list', 'table', 'inet', 'netfilter_conntrack'], check=False)
    assert table.returncode != 0 or '8081' not in table.stdout
