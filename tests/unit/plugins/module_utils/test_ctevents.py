"""_ctevents without a kernel: the events options (argspec and validation), the receive loop (overruns,
ending on time) with a scripted socket and clock, the loss account, and conntrack_info's result shape."""
import collections
import errno
import socket

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctevents as events
from ansible_collections.netfilter.conntrack.plugins.module_utils import _ctevcount as evc
from ansible_collections.netfilter.conntrack.plugins.module_utils import _info as info
from ansible_collections.netfilter.conntrack.plugins.module_utils._common import ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._ctevspec import EVENTS_ARGSPEC
from ansible_collections.netfilter.conntrack.plugins.module_utils._filter import FILTER_ARGSPEC, Filter

import ctevrecorded as rec


def argspec_result(params):
    spec = dict(info.INFO_ARGSPEC)
    spec.update(EVENTS_ARGSPEC)
    spec.update(FILTER_ARGSPEC)
    return ArgumentSpecValidator(spec).validate(params)


def test_argspec_fills_the_defaults():
    result = argspec_result({'events': {'seconds': 5}})
    assert not result.error_messages
    assert result.validated_parameters['events'] == {
        'seconds': 5, 'types': ['new', 'update', 'destroy'], 'table': 'conntrack', 'sample': 0, 'buffer_size': None,
        'kernel_filter': True}


def controller_parse_kv():
    """ansible-core's key=value splitter (controller code: absent where ansible-test runs these tests on a target
    Python with only module_utils)."""
    return pytest.importorskip('ansible.parsing.splitter').parse_kv


@pytest.mark.parametrize('adhoc', ['events={"seconds":5} query=events.new.rate', 'events=seconds=5 query=events.new.rate',
                                   'events="{\'seconds\': 5}" query=events.new.rate'])
def test_argspec_takes_the_adhoc_forms(adhoc):
    """What ``ansible -a '...'`` makes of the one-liner's arguments, then the argspec."""
    parse_kv = controller_parse_kv()
    result = argspec_result(parse_kv(adhoc))
    assert not result.error_messages and result.validated_parameters['events']['seconds'] == 5


def test_a_space_in_adhoc_json_is_split_by_ansible():
    """Known limitation of key=value arguments (before any module runs): write JSON without spaces."""
    assert '_raw_params' in controller_parse_kv()('events={"seconds": 5} query=events.new.rate')


@pytest.mark.parametrize('events_arg, words', [
    ({'types': ['created']}, 'created'),
    ({'table': 'nat'}, 'nat'),
    ({'seconds': 'soon'}, 'seconds'),
    ({'bogus': 1}, 'bogus'),
])
def test_argspec_refuses(events_arg, words):
    result = argspec_result({'events': events_arg})
    assert result.error_messages and words in str(result.error_messages)


def plan_of(events_arg, **params):
    params['events'] = argspec_result({'events': events_arg}).validated_parameters['events']
    return events.validate_events(params, Filter.from_params({k: v for k, v in params.items() if k != 'events'}))


@pytest.mark.parametrize('events_arg, filters, words', [
    ({'seconds': 0}, {}, 'events.seconds 0 is out of range: listen for 1 to 3600 seconds'),
    ({'seconds': -3}, {}, 'events.seconds -3 is out of range'),
    ({'seconds': 3601}, {}, 'events.seconds 3601 is out of range'),
    ({'types': []}, {}, 'events.types is empty'),
    ({'sample': -1}, {}, 'events.sample -1 is out of range: keep 0 to 10000'),
    ({'sample': 10001}, {}, 'events.sample 10001'),
    ({'buffer_size': 1000}, {}, 'events.buffer_size 1000 is out of range: give 65536 to 1073741824 bytes'),
    ({'buffer_size': 1 << 31}, {}, 'events.buffer_size'),
    ({'table': 'expect'}, {'proto': 'tcp'}, 'with events.table expect give no filter'),
])
def test_validation_names_the_option_and_what_is_allowed(events_arg, filters, words):
    with pytest.raises(ConntrackError) as caught:
        plan_of(events_arg, **filters)
    assert words in caught.value.msg
    assert caught.value.option.startswith('events.')


def test_plan_orders_the_types_and_sizes_the_buffer():
    plan = plan_of({'types': ['destroy', 'new'], 'seconds': 2}, top=3)
    assert plan['types'] == ['new', 'destroy'] and plan['buffer_size'] == events.DEFAULT_BUFFER and plan['top'] == 3
    assert events.validate_events({}, Filter.from_params({})) is None


def test_info_validate_checks_events_before_anything_is_opened(monkeypatch):
    monkeypatch.setattr(events, 'watch', lambda *a: pytest.fail('listened with bad options'))
    with pytest.raises(ConntrackError, match='events.seconds 0'):
        info.validate({'events': {'seconds': 0}})


class ScriptedSocket(object):
    """A socket whose recv_into follows a script: bytes (a datagram), an errno (raised), or None (nothing
    queued: BlockingIOError). poll() works on a real socket's descriptor, always readable so that it returns
    at once."""

    def __init__(self, script, clock=None, step=0.0):
        self.script = collections.deque(script)
        self.idle, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        other.send(b'x')
        self.other = other
        self.clock = clock
        self.step = step

    def fileno(self):
        return self.idle.fileno()

    def recv_into(self, buf):
        if self.clock is not None:
            self.clock.now += self.step
        item = self.script.popleft() if self.script else None
        if item is None:
            if self.clock is not None:
                self.clock.now += 0.5  # the time poll() would have waited for the next event (it returns at once)
            raise BlockingIOError()
        if isinstance(item, int):
            raise OSError(item, 'scripted')
        buf[:len(item)] = item
        return len(item)


class Clock(object):
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_overruns_are_counted_and_survived():
    datagrams = rec.datagrams()
    script = datagrams[:5] + [errno.ENOBUFS] + datagrams[5:10] + [errno.ENOBUFS, errno.ENOBUFS] + datagrams[10:]
    clock = Clock()
    sock = ScriptedSocket(script, clock, 0.001)
    counter = evc.EventCounter(Filter.from_params({}), True)
    called = []
    elapsed, overruns, drained = events.receive(sock, 1, counter.consume, clock, lambda: called.append(clock()))
    assert overruns == 3 and counter.received == 26 and counter.other == 4 and drained == 0  # 4: expectation events
    assert called and elapsed >= 1  # nothing more queued: the listen waited for its deadline


def test_a_listen_ends_on_time_while_events_keep_coming():
    clock = Clock()
    entry = {'family': 'ipv4', 'protonum': 17, 'src': '192.0.2.1', 'dst': '192.0.2.2', 'sport': 1, 'dport': 53}
    msg = rec.event(entry)
    sock = ScriptedSocket([msg] * 100000, clock, 0.0001)  # an endless storm at 10,000 events per (fake) second
    counter = evc.EventCounter(Filter.from_params({}), True)
    elapsed, overruns, drained = events.receive(sock, 2, counter.consume, clock)
    assert 2 <= elapsed < 2.01 and overruns == 0
    # after the deadline, what is queued is read for DRAIN_SECONDS at most
    assert drained <= events.DRAIN_SECONDS / 0.0001 + 1
    assert abs(counter.received - 20000 - drained) <= 1


def test_other_receive_errors_are_conntrack_errors():
    with pytest.raises(ConntrackError, match='receiving conntrack events failed'):
        events.receive(ScriptedSocket([errno.EBADF]), 1, lambda buf, n: None, Clock())


def complete_plan(**over):
    plan = {'table': 'conntrack', 'types': ['new', 'update', 'destroy'], 'seconds': 1}
    plan.update(over)
    return plan


def test_loss_account():
    counter = evc.EventCounter(Filter.from_params({}), True)
    for data in rec.datagrams():
        counter.consume(data, len(data))
    # 9 new, 7 destroyed received: the table grew by 2 if nothing was lost
    account = events.loss_account(0, 10, 12, counter, complete_plan(), Filter.from_params({}))
    assert account == {'overruns': 0, 'table_count_before': 10, 'table_count_after': 12, 'table_delta': 2,
                       'received_delta': 2, 'unexplained': 0}
    account = events.loss_account(4, 10, 112, counter, complete_plan(), Filter.from_params({}))
    assert account['unexplained'] == 100 and account['overruns'] == 4
    # no independent count: filtered, a type not listened to, the expect table
    for plan, flt in ((complete_plan(), Filter.from_params({'proto': 'udp'})),
                      (complete_plan(types=['new']), Filter.from_params({})),
                      (complete_plan(table='expect'), Filter.from_params({}))):
        account = events.loss_account(0, 10, 12, counter, plan, flt)
        assert account['received_delta'] is None and account['unexplained'] is None


def test_watch_result_shape(monkeypatch):
    """watch() with the kernel replaced: a scripted socket, a fake clock, a fixed table count."""
    clock = Clock()
    datagrams = rec.datagrams()

    class FakeEventSocket(object):
        def __init__(self, table, types, buffer_size, program=None):
            # the kernel runs the socket filter on every event before queueing it: here the oracle does
            kept = [data for data in datagrams if program is None or rec.cbpf_run(program, data)]
            self.sock = ScriptedSocket(kept, clock, 0.01)
            self.buffer_size, self.forced, self.program = buffer_size * 2, True, program

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    counts = iter([5, 7])
    monkeypatch.setattr(events, 'EventSocket', FakeEventSocket)
    monkeypatch.setattr(events, 'table_count', lambda table: next(counts))
    plan = plan_of({'seconds': 2, 'sample': 1})
    result = events.watch(plan, Filter.from_params({}), clock)
    assert 2 <= result['elapsed'] <= 3
    assert result['new']['count'] == 9 and result['new']['rate'] == round(9 / result['elapsed'], 1)
    assert result['loss'] == {'overruns': 0, 'table_count_before': 5, 'table_count_after': 7, 'table_delta': 2,
                              'received_delta': 2, 'unexplained': 0}
    assert result['kernel_filter'] is None and result['buffer_size'] == 2 * events.DEFAULT_BUFFER
    assert len(result['sample']) == 1
    counts = iter([5, 7])
    udp = events.watch(plan_of({'seconds': 2}, proto='udp'), Filter.from_params({'proto': 'udp'}), clock)
    assert udp['kernel_filter'] == 'bpf' and udp['new']['count'] == 6 and udp['update']['count'] == 0
    assert udp['loss']['unexplained'] is None
