"""conntrack-tools' own test suite (00create ... 10add), step by step, against the collection.

Each case file of the suite runs in its own pair of namespaces (``ctcf-cli-N`` for conntrack-tools,
``ctcf-mod-N`` for the modules), the kernel tables compared after every step (conformance.py says how;
the steps and their translations are in conformance_cases.py). Cases run three at a time (independent
namespaces) to keep the whole run short. The accounting table is printed at the end of the session; the
same table comes from ``python tests/integration/conformance.py``.

A case passes when none of its steps is a defect other than a known one (conformance.KNOWN_DEFECTS, each
reported by name with its steps) and conntrack-tools itself gives the outcomes its suite states.
"""
import concurrent.futures
import os
import shutil

import pytest

import conformance

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)'),
    pytest.mark.skipif(shutil.which('conntrack') is None, reason='needs conntrack-tools'),
]

CASES = list(conformance.cases.CASES)
WORKERS = 3
RESULTS = {}


@pytest.fixture(scope='module')
def accounting(request):
    """{case: future of its step records}: every selected case started at once, WORKERS at a time."""
    selected = [item.callspec.params['case'] for item in request.session.items
                if getattr(item, 'originalname', None) == 'test_case' and hasattr(item, 'callspec')]
    have = conformance.features()
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = dict((name, pool.submit(conformance.run_case, name, CASES.index(name), have))
                       for name in CASES if name in selected)
        yield futures
    reporter = request.config.pluginmanager.get_plugin('terminalreporter')
    capture = request.config.pluginmanager.get_plugin('capturemanager')
    if RESULTS and reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            report(reporter, have)


def report(reporter, have):
    """The accounting table and the known defects' steps, on the terminal."""
    reporter.write_line('')
    reporter.write_line('conformance with conntrack-tools\' test suite (gated features present: %s)'
                        % (', '.join(sorted(have)) or 'none'))
    for line in conformance.format_table(conformance.tally(RESULTS)).splitlines():
        reporter.write_line(line)
    for name, records in RESULTS.items():
        for record in records:
            if record.get('defect'):
                reporter.write_line('%s:%d known defect %s: %s' % (name, record['line'], record['defect'], record['cli']))


@pytest.mark.parametrize('case', CASES)
def test_case(case, accounting):
    records = accounting[case].result()
    RESULTS[case] = records
    assert len(records) == len(conformance.cases.CASES[case])
    for record in records:
        print('%s:%d %-24s %s -> %s' % (case, record['line'], record['category'], record['cli'],
                                        record['detail'] or record.get('why') or ''))
    unknown = ['%d: %s: %s' % (r['line'], r['cli'], r['detail']) for r in records
               if r['category'] == 'defect' and r.get('defect') not in conformance.KNOWN_DEFECTS]
    assert unknown == [], '\n'.join(unknown)
    deviations = ['%d: %s: %s' % (r['line'], r['cli'], r['detail']) for r in records
                  if r['category'] == 'conntrack-tools deviates']
    assert deviations == [], 'conntrack-tools does not meet its own suite here:\n' + '\n'.join(deviations)
