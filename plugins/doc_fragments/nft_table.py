# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of the modules that manage the collection's nft table (conntrack_notrack, conntrack_helper),
    # documented once for the one argument spec fragment (_nft.PERSIST_ARGSPEC).
    DOCUMENTATION = r'''
options:
  persist:
    description:
      - Also write the table to O(persist_file) and a systemd unit (O(unit_file), enabled for
        C(multi-user.target), ordered after C(nftables.service)) that loads it at boot.
        With nothing left in the table, the file and unit are removed.
      - Only in the initial network namespace.
      - The table is checked with C(nft -c) before any file is written, and the files are put back if the table
        then fails to apply.
    type: bool
    default: false
  persist_file:
    description: Where the boot-time copy of the table goes.
    type: path
    default: /etc/netfilter-conntrack/netfilter_conntrack.nft
  unit_file:
    description: The systemd unit that loads O(persist_file).
    type: path
    default: /etc/systemd/system/netfilter-conntrack.service
'''
