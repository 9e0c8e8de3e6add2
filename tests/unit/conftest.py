"""Unit tests import the helpers of tests/unit/fixtures (ctrecorded, conntrack_text, pyroute2_reference)."""
import os
import sys

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
if FIXTURES not in sys.path:
    sys.path.insert(0, FIXTURES)
