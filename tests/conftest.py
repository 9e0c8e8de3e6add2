"""Make the collection importable as ``ansible_collections.netfilter.conntrack`` from the work tree.

A symlink ``build/src/ansible_collections/netfilter/conntrack`` -> the repository root is
created on first use, so unit tests exercise the code being edited, not an installed copy.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, 'build', 'src')
LINK = os.path.join(SRC, 'ansible_collections', 'netfilter', 'conntrack')

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(ROOT, LINK)
    except FileExistsError:
        pass
if SRC not in sys.path:
    sys.path.insert(0, SRC)
