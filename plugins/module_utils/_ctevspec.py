# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_info's ``events`` option as an argument spec, apart from the listener (``_ctevents``).

Private to the collection. The module builds its argument spec from this file alone, so a conntrack_info call
without ``events`` (every role run, every fleet-wide read) never imports the event listener and its decoders.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# the event types, in the order of their multicast groups (``_ctevcount.GROUPS``)
EVENT_TYPES = ('new', 'update', 'destroy')

EVENTS_OPTIONS = dict(
    seconds=dict(type='int', default=10),
    types=dict(type='list', elements='str', choices=list(EVENT_TYPES), default=list(EVENT_TYPES)),
    table=dict(type='str', choices=['conntrack', 'expect'], default='conntrack'),
    sample=dict(type='int', default=0),
    buffer_size=dict(type='int'),
    kernel_filter=dict(type='bool', default=True),
)
EVENTS_ARGSPEC = dict(events=dict(type='dict', options=EVENTS_OPTIONS))
