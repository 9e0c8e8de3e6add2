# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""audit.yml's report templates: rows sorted fullest first, a host whose limit is unknown listed last."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import jinja2
import pytest

TEMPLATES = os.path.join(os.path.dirname(__file__), '..', '..', 'playbooks', 'templates')


def row(count, limit):
    usage = round(100.0 * count / limit, 2) if limit else None
    return {'count': count, 'max': limit, 'usage_percent': usage, 'kernel': {},
            'stats': {'drop': 0, 'early_drop': 0, 'insert_failed': 0}}


@pytest.mark.parametrize('name', ['audit_report.j2', 'audit_report.md.j2', 'audit_report.html.j2'])
def test_unknown_limit_is_listed_last(name):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined)
    rows = [['half', row(50, 100)], ['unknown', row(7, None)], ['full', row(95, 100)]]
    text = env.get_template(name).render(audit_rows=rows, audit_warn_percent=80, audit_fail_percent=90,
                                         audit_churn_seconds=0)
    assert text.index('full') < text.index('half') < text.index('unknown')
    assert 'None' not in text
    if name.endswith('.html.j2'):  # not classed 'ok': its usage is not known
        assert '<tr class="unknown"><td class="host">unknown</td>' in text
