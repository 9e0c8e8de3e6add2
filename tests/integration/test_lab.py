"""The lab, the ad-hoc use a new user types after `make demo`, the audit playbook and ansible-doc."""
import os
import re
import subprocess

import pytest

from conftest import ROOT, VENV_BIN, ansible_env
from lab import Lab, netns_list


@pytest.fixture(scope='module')
def fresh(lab):
    """New traffic for this module: the session lab's UDP/ICMP entries expire after 30 s."""
    lab.traffic()
    return lab


def test_hosts_reach_each_other_and_tables_fill(fresh):
    lab = fresh
    for host in lab.hosts:
        assert lab.count_entries(host) > 0, 'traffic left no conntrack entries in %s' % host
        listing = lab.exec(host, ['conntrack', '-L']).stdout
        for proto in ('tcp ', 'udp ', 'icmp ', 'icmpv6 '):
            assert proto in listing, '%s: no %s entries' % (host, proto.strip())
        assert lab.ipv6(host) in listing and lab.ipv4(host) in listing


def test_lab_has_no_route_out(lab):
    for host in lab.hosts:
        routes = lab.exec(host, ['ip', 'route', 'show']).stdout + lab.exec(host, ['ip', '-6', 'route', 'show']).stdout
        assert 'default' not in routes


def test_adhoc_conntrack_info_as_a_new_user_types_it(lab, ansible_adhoc):
    rc, results, output = ansible_adhoc('all', 'netfilter.conntrack.conntrack_info', '', lab.inventory_path)
    assert rc == 0, output
    assert sorted(results) == lab.hosts
    for host, result in results.items():
        assert result['backend'] == 'netlink'
        assert result['count'] >= 1 and result['max'] > 0
        assert result['kernel']['initial_namespace'] is False  # each lab host is a namespace
        assert set(result['stats']) >= {'drop', 'early_drop', 'insert_failed'}


def test_adhoc_query_brings_back_only_the_answer(fresh, ansible_adhoc):
    lab = fresh
    rc, results, output = ansible_adhoc('h1', 'netfilter.conntrack.conntrack_info',
                                        'summary=true query=summary.by_proto', lab.inventory_path)
    assert rc == 0, output
    result = results['h1']
    assert set(result['query_result']) >= {'tcp', 'udp', 'icmp', 'icmpv6'}
    assert 'count' not in result and 'sysctls' not in result


def test_audit_playbook_reports_every_host(lab, ansible_playbook):
    proc = ansible_playbook('playbooks/audit.yml', lab.inventory_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for host in lab.hosts:
        assert '"%s ' % host in proc.stdout or '%s  ' % host in proc.stdout
    assert 'Could not match' not in proc.stdout, proc.stdout
    # Per host the default callback prints the read's `ok:` line, the report's row and the recap, nothing more
    # (the first host also carries the run_once tasks' lines).
    for host in lab.hosts[1:]:
        naming = [line for line in proc.stdout.splitlines() if re.search(r'(^|[\s"\[])%s([\s"\]]|$)' % host, line)]
        assert len(naming) == 3, naming
    proc = ansible_playbook('playbooks/audit.yml', lab.inventory_path, {'audit_fail_percent': 0})
    assert proc.returncode != 0 and 'is at or above audit_fail_percent=0' in proc.stdout
    recap = proc.stdout[proc.stdout.index('PLAY RECAP'):]
    report = proc.stdout[:proc.stdout.index('PLAY RECAP')]
    for host in lab.hosts:  # every host is in the report, and every host failed after it
        assert '"%s ' % host in report or '%s  ' % host in report
        assert 'fatal: [%s]' % host in proc.stdout
        assert any(line.startswith(host + ' ') and 'failed=1' in line for line in recap.splitlines()), recap


def test_ansible_doc_renders_every_module(installed_collection):
    modules = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules'))
                     if name.endswith('.py') and not name.startswith('_'))
    assert 'conntrack_info' in modules
    for module in modules:
        proc = subprocess.run([os.path.join(VENV_BIN, 'ansible-doc'), 'netfilter.conntrack.' + module],
                              env=ansible_env(installed_collection), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False)
        assert proc.returncode == 0 and 'OPTIONS' in proc.stdout, (module, proc.stderr)


def test_down_leaves_nothing():
    extra = Lab(prefix='cttx', hosts=2)
    extra.up()
    assert 'cttx-h1' in netns_list()
    extra.down()
    assert not [ns for ns in netns_list() if ns.startswith('cttx')]
    links = subprocess.run(['ip', 'link', 'show'], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert 'cttx' not in links
    assert not os.path.exists(os.path.join(ROOT, 'lab', 'cttx'))


def test_adhoc_bad_input_is_a_message_not_a_traceback(lab, ansible_adhoc):
    for args, words in (('namespace=ctt-nope', "namespace 'ctt-nope' does not exist"),
                        ('entries=true dport=70000 proto=tcp', 'dport 70000 is out of range'),
                        ('entries=true src=2001:db8::1 family=ipv4', 'IPv6 address but family is ipv4'),
                        ('query=entries[', 'not a valid JMESPath expression')):
        rc, results, output = ansible_adhoc('h1', 'netfilter.conntrack.conntrack_info', args, lab.inventory_path)
        assert rc != 0
        assert words in results['h1']['msg'], output
        assert 'Traceback' not in output
