"""What the roles' filters share (plugins/plugin_utils/_fleet_common.py): the table warning."""
from hypothesis import given, settings, strategies as st

from ansible_collections.netfilter.conntrack.plugins.plugin_utils._fleet_common import table_warning


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(count=st.integers(0, 2000000), limit=st.integers(0, 2000000), warn=st.integers(0, 100),
       initial=st.booleans())
def test_the_warning_appears_exactly_at_or_above_the_threshold(count, limit, warn, initial):
    text = table_warning(count, limit, warn, initial, 'levers')
    usage = round(100.0 * count / limit, 1) if limit else 0.0
    assert (text is not None) == bool(limit and usage >= warn)
    if text and not initial:
        assert text.endswith('levers')
