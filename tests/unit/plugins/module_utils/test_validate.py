"""_validate on generated input (hypothesis): what each validator accepts is exactly what it promises."""
import ipaddress
import string

from hypothesis import given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.module_utils import _validate
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True, database=None)
ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=24), st.lists(st.integers(), max_size=2))


def refused(func, *args):
    try:
        func(*args)
    except ConntrackError as exc:
        return exc
    return None


@SETTINGS
@given(ANY)
def test_parse_int_takes_only_whole_numbers_and_ascii_digits(value):
    exc = refused(_validate.parse_int, value, 'dport', 0, 65535, 'ports')
    if exc is not None:
        assert exc.option == 'dport' and exc.msg.startswith('dport ')
        return
    number = _validate.parse_int(value, 'dport', 0, 65535, 'ports')
    assert 0 <= number <= 65535 and not isinstance(value, bool)
    if isinstance(value, str):
        assert value.strip().lstrip('+-').isdigit() and all(c in string.digits for c in value.strip().lstrip('+-'))
    elif isinstance(value, float):
        assert value == number


@SETTINGS
@given(st.text(max_size=20))
def test_interface_names_fit_the_kernel_and_nft(name):
    exc = refused(_validate.check_ifname, name, 'rules[0].iif')
    if exc is not None:
        assert exc.option == 'rules[0].iif'
        return
    assert 1 <= len(name.encode('utf-8', 'surrogatepass')) <= 15
    assert not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f or c in '"\'\\/:' for c in name)
    assert name not in ('.', '..') and '*' not in name[:-1]


@SETTINGS
@given(st.one_of(st.text(alphabet='0123456789abcdef.:/%x; ', max_size=30), st.ip_addresses().map(str), ANY))
def test_networks_are_plain_addresses_or_cidrs(value):
    exc = refused(_validate.parse_network, value, 'src')
    if exc is not None:
        assert exc.option == 'src'
        return
    net = _validate.parse_network(value, 'src')
    assert '%' not in str(net) and ';' not in str(value)
    assert isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network))


@SETTINGS
@given(st.one_of(st.integers(), st.text(max_size=12), st.floats()))
def test_port_specs_are_ordered_ranges_in_range(value):
    exc = refused(_validate.parse_port_spec, value, 'dport')
    if exc is None:
        low, high = _validate.parse_port_spec(value, 'dport')
        assert 0 <= low <= high <= 65535
