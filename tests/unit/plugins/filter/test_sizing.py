"""Unit tests of the sizing filters, checked against the kernel's formula and the docs' worked examples."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.netfilter.conntrack.plugins.filter import sizing

MIB = 1024 ** 2
GIB = 1024 ** 3


@pytest.mark.parametrize('mem,expected', [
    (64 * MIB, 1024),          # 64 MiB / 16384 / 8 = 512 -> floor 1024
    (256 * MIB, 2048),
    (512 * MIB, 4096),
    (GIB, 8192),               # exactly 1 GiB is not "above 1 GiB"
    (GIB + 4096, 65536),
    (4 * GIB, 65536),          # exactly 4 GiB: still the 1-4 GiB branch
    (4 * GIB + 4096, 262144),
    (24 * GIB, 262144),
    (1024 * GIB, 262144),
])
def test_kernel_default_buckets(mem, expected):
    assert sizing.conntrack_buckets_auto(mem) == expected
    assert sizing.conntrack_max_auto(mem) == expected


def test_units_and_32_bit():
    assert sizing.conntrack_buckets_auto(2048, unit='MiB') == 65536
    assert sizing.conntrack_buckets_auto(2, unit='GiB') == 65536
    assert sizing.conntrack_buckets_auto(8, unit='GiB', bits=32) == 65536
    assert sizing.conntrack_buckets_auto(512, unit='MiB', bits=32) == 8192


def test_max_with_hashsize_is_eight_times():
    assert sizing.conntrack_max_auto(24, unit='GiB', hashsize=65536) == 524288
    assert sizing.conntrack_max_auto(24, unit='GiB', hashsize=1000) == 8 * 1024  # rounded to 512 first


@pytest.mark.parametrize('cpus,kw,expected', [
    (1, {}, 131072), (2, {}, 131072), (4, {}, 131072), (8, {}, 262144), (16, {}, 524288),
    (8, dict(per_core=131072), 1048576), (2, dict(min=0), 65536), (64, dict(per_core=0), 0),
])
def test_per_core(cpus, kw, expected):
    assert sizing.conntrack_max_per_core(cpus, **kw) == expected


@pytest.mark.parametrize('max_entries,kw,expected', [
    (1000000, dict(ratio=4), 250368), (524288, {}, 524288), (1000, {}, 1024), (131072, dict(ratio=8), 16384),
    (100000, dict(minimum=1), 100352),
])
def test_buckets(max_entries, kw, expected):
    assert sizing.conntrack_buckets(max_entries, **kw) == expected
    assert expected % 512 == 0


def test_round_buckets():
    assert sizing.conntrack_round_buckets(100000) == 100352
    assert sizing.conntrack_round_buckets(512) == 512
    assert sizing.conntrack_round_buckets(1) == 512
    assert sizing.conntrack_round_buckets(1, bits=32) == 1024


def test_clamp_and_memory():
    assert sizing.conntrack_clamp(5000, 65536, 1048576) == 65536
    assert sizing.conntrack_clamp(5000000, upper=2097152) == 2097152
    assert sizing.conntrack_clamp(70000) == 70000
    assert sizing.conntrack_memory(1048576) == 343932928
    assert sizing.conntrack_memory(262144, buckets=65536, entry_size=256) == 262144 * 256 + 65536 * 8


@pytest.mark.parametrize('call,fragment', [
    (lambda: sizing.conntrack_buckets_auto('lots'), 'whole number'),
    (lambda: sizing.conntrack_buckets_auto(-1), 'at least 1'),
    (lambda: sizing.conntrack_buckets_auto(1, unit='TB'), "unit 'TB'"),
    (lambda: sizing.conntrack_buckets_auto(1024, bits=48), 'bits must be 32 or 64'),
    (lambda: sizing.conntrack_max_per_core(0), 'cpus must be at least 1'),
    (lambda: sizing.conntrack_max_per_core(True), 'whole number'),
    (lambda: sizing.conntrack_buckets(1000, ratio=0), 'ratio must be at least 1'),
    (lambda: sizing.conntrack_buckets(2.5), 'whole number'),
    (lambda: sizing.conntrack_clamp(1, 10, 5), 'greater than upper'),
])
def test_bad_input(call, fragment):
    with pytest.raises(AnsibleFilterError) as exc:
        call()
    assert fragment in str(exc.value)


def test_filter_names():
    names = sizing.FilterModule().filters()
    assert all(name.startswith('conntrack_') for name in names)
    assert set(names) >= {'conntrack_max_auto', 'conntrack_max_per_core', 'conntrack_buckets', 'conntrack_clamp'}


# --- the tuning role's sizing policy ----------------------------------------------------------------

def info(count=1000, max_=65536, buckets=65536, initial=True):
    return {'count': count, 'max': max_, 'buckets': buckets, 'kernel': {'initial_namespace': initial}}


def plan(information, **kw):
    kw.setdefault('memtotal_mb', 16384)
    kw.setdefault('vcpus', 8)
    return sizing.conntrack_tuning_plan(information, **kw)


def test_kernel_policy_raises_to_the_kernels_default_for_the_memory():
    result = plan(info())
    assert result['max'] == 262144 and result['buckets'] == 262144
    assert result['settings'] == {'max': 262144, 'buckets': 262144}
    assert result['persist'] is True and result['refusal'] is None and result['notes'] == []


def test_raise_only_keeps_a_larger_value_and_no_limit():
    assert plan(info(max_=1048576, buckets=524288))['max'] == 1048576
    assert plan(info(max_=1048576, buckets=524288))['buckets'] == 1048576  # by ratio 1 from the kept max
    assert plan(info(max_=0))['max'] == 0  # 0 means no limit: never replaced
    assert plan(info(max_=1048576), raise_only=False)['max'] == 262144


def test_per_core_and_ceiling():
    assert plan(info(), policy='per_core', vcpus=16)['max'] == 524288
    assert plan(info(), policy='per_core', vcpus=16, ceiling=300000)['max'] == 300000
    assert plan(info(), policy='per_core', vcpus=1)['max'] == 131072  # the floor


def test_numbers_keep_and_ratio():
    assert plan(info(), max=500000, policy='fixed')['max'] == 500000
    result = plan(info(), buckets='keep')
    assert result['buckets'] == 65536 and 'buckets' not in result['settings']
    assert plan(info(), bucket_ratio=4)['buckets'] == 65536
    assert plan(info(), buckets=100000)['buckets'] == 100000


def test_a_namespace_gets_timeouts_only_and_a_note():
    result = plan(info(initial=False), timeouts={'udp_timeout': 30})
    assert result['settings'] == {'udp_timeout': 30}
    assert result['persist'] is False and len(result['notes']) == 2
    assert plan(info(), namespace='pod1')['persist'] is False


def test_refusal_below_the_count_unless_forced():
    result = plan(info(count=300000), max=200000, policy='fixed')
    assert 'refusing nf_conntrack_max 200000' in result['refusal'] and '300000' in result['refusal']
    assert plan(info(count=300000), max=200000, policy='fixed', force_lower=True)['refusal'] is None


@pytest.mark.parametrize('kw', [dict(policy='fixed'), dict(policy='bogus'), dict(max='lots')])
def test_bad_plans(kw):
    with pytest.raises(AnsibleFilterError):
        plan(info(), **kw)


def test_persist_given_as_inventory_text():
    """INI inventories give strings: 'false' must not read as true (the role passes ``| bool``)."""
    assert plan(info(initial=False), persist=False)['notes'] == [plan(info(initial=False))['notes'][0]]


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(count=st.integers(0, 4000000), now_max=st.integers(0, 4000000), now_buckets=st.integers(0, 2000000),
       initial=st.booleans(), mem=st.integers(64, 1 << 20), cpus=st.integers(1, 256),
       policy=st.sampled_from(['kernel', 'per_core']), raise_only=st.booleans(), ceiling=st.integers(0, 3000000),
       buckets=st.sampled_from(['auto', 'keep']), ratio=st.integers(1, 8))
def test_tuning_plan_invariants(count, now_max, now_buckets, initial, mem, cpus, policy, raise_only, ceiling, buckets,
                                ratio):
    result = sizing.conntrack_tuning_plan(
        {'count': count, 'max': now_max, 'buckets': now_buckets, 'kernel': {'initial_namespace': initial}},
        memtotal_mb=mem, vcpus=cpus, policy=policy, raise_only=raise_only, ceiling=ceiling, buckets=buckets,
        bucket_ratio=ratio)
    if raise_only and now_max == 0:
        assert result['max'] == 0  # no limit stays no limit
    if raise_only and now_max:
        assert result['max'] == now_max or result['max'] > now_max
    if not initial:
        assert 'max' not in result['settings'] and 'buckets' not in result['settings'] and not result['persist']
    if buckets == 'keep':
        assert result['buckets'] == now_buckets
    assert (result['refusal'] is not None) == (0 < result['max'] < count)
