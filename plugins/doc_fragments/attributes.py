# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The attributes every module of the collection has. Each module states its own support
    # (check_mode, diff_mode) and what it does there (details); the descriptions and the platform
    # are the same for all.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check mode and return the changed status the task would have, without changing the target.
  diff_mode:
    description: Returns details on what changed (or would change in check mode) when run with C(--diff).
  platform:
    description: Target operating system the module runs on.
    support: full
    platforms: linux
    details:
      - Linux with the nf_conntrack kernel module (built in or loadable) and Python 3.8 or later; most
        tasks need root (CAP_NET_ADMIN, and write access to C(/proc/sys) and C(/etc) where they persist).
'''
