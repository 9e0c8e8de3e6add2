"""The lab's addressing and traffic mesh at fleet size (no root: only the naming is exercised)."""
import ipaddress
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'lab'))

import lab as labmod  # noqa: E402

DOC_V4 = [ipaddress.ip_network(n) for n in ('192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24')]
DOC_V6 = ipaddress.ip_network('2001:db8::/32')


@pytest.mark.parametrize('size', [1, 3, 243, 244, 245, 250, 488, 489, labmod.MAX_HOSTS])
def test_every_host_has_its_own_documentation_addresses(size):
    lab = labmod.Lab(prefix='ctfl', hosts=size)
    v4 = [ipaddress.ip_address(lab.ipv4(h)) for h in lab.hosts]
    v6 = [ipaddress.ip_address(lab.ipv6(h)) for h in lab.hosts]
    assert len(set(v4)) == size and len(set(v6)) == size
    for host, address in zip(lab.hosts, v4):
        network = ipaddress.ip_network(lab.subnet(host))
        assert network in DOC_V4 and address in network
        assert 11 <= int(address) - int(network.network_address) <= 254  # never .0-.10 or broadcast
    assert all(address in DOC_V6 for address in v6)


def test_the_first_hosts_keep_their_addresses():
    lab = labmod.Lab(prefix='ctfl', hosts=3)
    assert [lab.ipv4(h) for h in lab.hosts] == ['192.0.2.11', '192.0.2.12', '192.0.2.13']
    assert lab.ipv6('h1') == '2001:db8:c7::11'


def test_host_244_and_245_are_in_different_ranges():
    lab = labmod.Lab(prefix='ctfl', hosts=300)
    assert lab.ipv4('h244') == '192.0.2.254' and lab.ipv4('h245') == '198.51.100.11'


@pytest.mark.parametrize('size', [0, labmod.MAX_HOSTS + 1])
def test_sizes_outside_the_ranges_are_refused(size):
    with pytest.raises(ValueError, match='a lab has 1 to 732 hosts'):
        labmod.Lab(prefix='ctfl', hosts=size)


@pytest.mark.parametrize('size', [2, 3, 9, 10, 200, 732])
def test_the_mesh_reaches_every_host_equally_and_grows_linearly(size):
    lab = labmod.Lab(prefix='ctfl', hosts=size)
    reached = dict((h, 0) for h in lab.hosts)
    total = 0
    for host in lab.hosts:
        peers = lab.peers(host)
        assert host not in peers and len(set(peers)) == len(peers) == min(labmod.FANOUT, size - 1)
        for peer in peers:
            reached[peer] += 1
        total += len(peers)
    assert set(reached.values()) == {min(labmod.FANOUT, size - 1)}  # the last host as often as the first
    assert total <= labmod.FANOUT * size
