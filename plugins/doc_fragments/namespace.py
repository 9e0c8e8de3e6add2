# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  namespace:
    description:
      - Network namespace to work in, so containers and pods with their own conntrack table can be managed.
      - A name as listed by C(ip netns list) (a file under C(/run/netns)), or a path to a namespace file
        such as C(/proc/1234/ns/net).
      - When omitted, the namespace of the Python process that runs the module (normally the host's).
    type: str
'''
