"""Named regressions of issue 10 (found by the property tests), each through the property harness.

Each test runs the module in a ``ctprop`` namespace (seeded entries and expectations, the canary
tables, our own table preloaded with a helper and NOTRACK/SYNPROXY rules, no ``ct label`` rule) and
asserts: the call fails with a msg naming the option at fault (or, where noted, is handled), no
traceback, exit code 0/1 with one JSON object, and nothing changed (namespace snapshot and canary).
"""
import os
import re

import pytest

import propsupport as ps

INF = float('inf')
TCP_ENTRY = {'proto': 'tcp', 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 40000, 'dport': 443}


@pytest.fixture(scope='module')
def env(request, tmp_path_factory):
    base = str(tmp_path_factory.mktemp('ctprop-reg'))
    ps.register_summary(request.config, base)
    with ps.prop_env('r', base) as the_env:
        assert not the_env.seed_problems, the_env.seed_problems
        assert not the_env.preload_problems, the_env.preload_problems
        yield the_env


def names(msg, option):
    return re.search(r'(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])' % re.escape(option), msg or '') is not None


def assert_clean(call):
    """Property 1 and 3 and, for a failure, 2: no traceback, one JSON object, canary and state intact."""
    kinds = dict((kind, detail) for kind, _sig, detail in call.problems if kind != 'msg_without_option')
    assert 'traceback' not in kinds, call.describe()
    assert 'bad_output' not in kinds and 'timeout' not in kinds, call.describe()
    assert 'canary_changed' not in kinds and 'global_knob_changed' not in kinds, call.describe()
    if call.failed:
        assert 'state_changed_on_failure' not in kinds, call.describe()


def assert_refused(env, module, args, *options, **kw):
    """The call fails, its msg names one of ``options``, nothing changed."""
    call = env.call(module, args, **kw)
    assert_clean(call)
    assert call.failed, 'expected a failure naming %s\n%s' % ('/'.join(options), call.describe())
    assert any(names(call.msg, o) for o in options), 'msg does not name %s: %r' % ('/'.join(options), call.msg)
    assert not call.changed_sections, call.describe()
    return call


def own_table(env):
    return env.nft('list', 'table', *ps.OWN_TABLE)


# --- conntrack_info -------------------------------------------------------------------------------

@pytest.mark.parametrize('proto', ['²', '①'])
def test_info_unicode_digit_proto(env, proto):
    assert_refused(env, 'conntrack_info', {'proto': proto, 'entries': True}, 'proto')


@pytest.mark.parametrize('query', ['sort(@)', 'abs(backend)'])
def test_info_query_type_error(env, query):
    assert_refused(env, 'conntrack_info', {'query': query}, 'query')


@pytest.mark.parametrize('query', ['[' * 5000, '(' * 3000 + 'count' + ')' * 3000, 'abs(' * 1000 + 'count' + ')' * 1000],
                         ids=['brackets', 'parens', 'abs'])
def test_info_deeply_nested_query(env, query):
    """A query nested deeper than the parser's recursion (RecursionError) is a clear failure."""
    assert_refused(env, 'conntrack_info', {'query': query}, 'query')


# --- namespace --------------------------------------------------------------------------------------

MINIMAL = {
    'conntrack_info': {'entries': True},
    'conntrack_entry': {'proto': 'udp', 'src': '192.0.2.9', 'dst': '192.0.2.10', 'sport': 1000, 'dport': 2000,
                        'timeout': 60},
    'conntrack_flush': {'all': True},
    'conntrack_sysctl': {'name': 'tcp_loose', 'value': 0},
    'conntrack_helper': {'helper': 'tftp'},
    'conntrack_notrack': {'rules': [{'proto': 'udp', 'dport': 5353}]},
}


@pytest.mark.parametrize('namespace', ['ctprop\x00x', '/tmp/x\x00y'])
@pytest.mark.parametrize('module', ps.MODULES)
def test_nul_byte_in_namespace(env, module, namespace):
    # what a C string would make of it must not exist either
    assert not os.path.lexists('/run/netns/ctprop') and not os.path.lexists('/tmp/x')
    assert_refused(env, module, dict(MINIMAL[module], namespace=namespace), 'namespace')


# --- conntrack_entry --------------------------------------------------------------------------------

@pytest.mark.parametrize('label', ['²', '٣'])
def test_entry_unicode_digit_label(env, label):
    assert_refused(env, 'conntrack_entry', dict(TCP_ENTRY, labels=[label]), 'labels')


def test_entry_scoped_ipv6_source(env):
    assert_refused(env, 'conntrack_entry', {'proto': 'udp', 'src': 'fe80::1%x', 'dst': 'fe80::2', 'sport': 1000,
                                            'dport': 2000, 'timeout': 60}, 'src')


def test_entry_dccp_open_is_idempotent(env):
    """proto dccp with tcp_state OPEN: created, and the same task again is ok and unchanged (or refused)."""
    args = {'proto': 'dccp', 'src': '192.0.2.1', 'dst': '192.0.2.4', 'sport': 5000, 'dport': 5001,
            'tcp_state': 'OPEN', 'timeout': 600}
    first = env.call('conntrack_entry', args, restore=False)
    try:
        assert_clean(first)
        if first.failed:
            assert names(first.msg, 'proto') or names(first.msg, 'tcp_state'), first.describe()
            assert not first.changed_sections, first.describe()
            return
        assert first.result.get('changed') is True, first.describe()
        second = env.call('conntrack_entry', args, restore=False)
        assert_clean(second)
        assert not second.failed, second.describe()
        assert second.result.get('changed') is False, second.describe()
    finally:
        env.restore()


def test_entry_gre_is_refused_by_option(env):
    call = assert_refused(env, 'conntrack_entry', {'proto': 'gre', 'src': '192.0.2.1', 'dst': '192.0.2.2',
                                                   'timeout': 60}, 'proto')
    assert call.msg.strip() not in ('Invalid argument', '[Errno 22] Invalid argument'), call.msg


def test_entry_untracked_icmpv6_type(env):
    call = assert_refused(env, 'conntrack_entry', {'proto': 'icmpv6', 'src': '2001:db8::1', 'dst': '2001:db8::2',
                                                   'icmp_type': 1, 'icmp_code': 0, 'icmp_id': 1, 'timeout': 60},
                          'icmp_type')
    assert call.msg.strip() not in ('Invalid argument', '[Errno 22] Invalid argument'), call.msg


def _get_entry(env):
    rc, out, err = env.conntrack('-G', '-p', 'tcp', '-s', '192.0.2.1', '-d', '192.0.2.2', '--sport', '40000',
                                 '--dport', '443', '-o', 'extended')
    assert rc == 0, err
    return out


def test_entry_update_with_labels_but_no_label_rule(env):
    """mark + tcp_state + timeout + labels on an existing entry, no ct label rule: fails, entry untouched."""
    before = _get_entry(env)
    assert 'mark=0 ' in before and ' ESTABLISHED ' in before and '[ASSURED]' in before, before
    assert_refused(env, 'conntrack_entry', dict(TCP_ENTRY, mark=5, tcp_state='TIME_WAIT', timeout=120, labels=[1]),
                   'labels')
    after = _get_entry(env)
    assert 'mark=0 ' in after and ' ESTABLISHED ' in after and '[ASSURED]' in after, after
    assert ' TIME_WAIT ' not in after and 'mark=5 ' not in after, after


# --- conntrack_notrack / conntrack_helper -------------------------------------------------------------

def synproxy_rule(**options):
    return {'proto': 'tcp', 'dport': 443, 'synproxy': True, 'synproxy_options': options}


@pytest.mark.parametrize('option', ['wscale', 'mss'])
def test_notrack_synproxy_infinity(env, option):
    assert_refused(env, 'conntrack_notrack', {'rules': [synproxy_rule(**{option: INF})]}, option)


def test_notrack_synproxy_fractional_mss(env):
    assert_refused(env, 'conntrack_notrack', {'rules': [synproxy_rule(mss=1460.7)]}, 'mss')


def test_notrack_synproxy_timestamp_string_false(env):
    """timestamp: "false" never turns timestamps on: refused, or rendered without timestamp."""
    call = env.call('conntrack_notrack', {'rules': [synproxy_rule(timestamp='false')]}, restore=False)
    try:
        assert_clean(call)
        if call.failed:
            assert names(call.msg, 'timestamp'), call.describe()
            assert not call.changed_sections, call.describe()
            return
        lines = [l for l in call.after['ruleset'].splitlines() if ' synproxy ' in l]
        assert lines, call.after['ruleset']
        assert not any('timestamp' in l for l in lines), lines
    finally:
        env.restore()


@pytest.mark.parametrize('module,args', [
    ('conntrack_notrack', {'rules': [{'proto': 'tcp', 'dport': 22, 'iif': 'eth0\n'}]}),
    ('conntrack_helper', {'helper': 'ftp', 'iif': 'eth0\n'}),
])
def test_interface_with_newline(env, module, args):
    assert_refused(env, module, args, 'iif')
    rc, text, err = own_table(env)
    assert rc == 0, err
    rc, _out, err = env.in_ns(lambda: ps._run_text_input([ps.NFT, '-c', '-f', '-'], text))
    assert rc == 0, err


def test_interface_of_fifteen_non_ascii_characters(env):
    name = '\u00e9' * 15  # 15 characters, 30 bytes: more than IFNAMSIZ - 1
    assert len(name) == 15 and len(name.encode()) > 15
    assert_refused(env, 'conntrack_notrack', {'rules': [{'proto': 'tcp', 'dport': 22, 'iif': name}]}, 'iif')


def test_notrack_connlimit_above_u32(env):
    rule = dict(synproxy_rule(), connlimit=4294967296)
    del rule['synproxy_options']
    assert_refused(env, 'conntrack_notrack', {'rules': [rule]}, 'connlimit')


def test_notrack_empty_rule_needs_all(env):
    """rules: [{}] matches everything: refused unless the rule says all: true, and the msg says so."""
    assert_refused(env, 'conntrack_notrack', {'rules': [{}]}, 'all')


def test_notrack_unicode_digit_port(env):
    assert_refused(env, 'conntrack_notrack', {'rules': [{'proto': 'tcp', 'dport': '\u0663'}]}, 'dport')


def test_notrack_scoped_source_never_reaches_nft(env):
    evil = 'fe80::1%x;flush ruleset'
    call = assert_refused(env, 'conntrack_notrack', {'rules': [{'proto': 'udp', 'dport': 53, 'src': evil}]}, 'src',
                          spy=True)
    for command in call.run.log:
        text = ' '.join(command['argv']) + '\n' + (command.get('input') or '')
        assert 'flush ruleset' not in text and 'fe80::1%x' not in text, command
