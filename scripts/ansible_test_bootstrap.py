"""Provide ansible-test's pip bootstrap script locally.

ansible-test bootstraps pip into each sanity virtualenv by running a
``get-pip`` script that it downloads from a host this kind of machine cannot
reach, unless the script is already in its cache. This writes a small script
of our own into that cache: it installs pip with the standard library's
``ensurepip`` and then installs the exact pip version ansible-test asked for
from the package index pip is configured to use.
"""
import os

from ansible_test._internal.python_requirements import get_venv_packages  # pylint: disable=import-error

SCRIPT = '''\
"""pip bootstrap for ansible-test, written by netfilter.conntrack's scripts/setup."""
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip points PIP_CONFIG_FILE at /dev/null for itself; the pip run below must see the
# machine's pip configuration (index, certificates) again.
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
'''


class _Python:  # the only attribute get_venv_packages reads
    version = '3.11'


def main():
    pip_version = get_venv_packages(_Python())['pip']
    path = os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % pip_version.replace('.', '_'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path) or open(path).read() != SCRIPT:
        with open(path, 'w') as handle:
            handle.write(SCRIPT)
    print('[setup] ansible-test pip %s bootstrap: %s' % (pip_version, path))


if __name__ == '__main__':
    main()
