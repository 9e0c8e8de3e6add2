# -*- coding: utf-8 -*-
# Copyright: netfilter.conntrack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""conntrack_sysctl's task: validate every knob, plan, then apply and persist; a failure undoes both."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.netfilter.conntrack.plugins.module_utils._common import NAMESPACE_ARGSPEC, ConntrackError
from ansible_collections.netfilter.conntrack.plugins.module_utils._files import FileChanges, file_mode, read_file
from ansible_collections.netfilter.conntrack.plugins.module_utils import _sysctl as knobs
from ansible_collections.netfilter.conntrack.plugins.module_utils import _sysctlfiles as boot


# conntrack_sysctl's options, and the checks between them: the module's form and conntrack_harden's steps share them
SYSCTL_ARGSPEC = dict(
    name=dict(type='str'),
    value=dict(type='raw'),
    settings=dict(type='dict'),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    apply=dict(type='bool', default=True),
    persist=dict(type='bool', default=False),
    force=dict(type='bool', default=False),
    sysctl_file=dict(type='path', default=boot.DEFAULT_SYSCTL_FILE),
    modprobe_file=dict(type='path', default=boot.DEFAULT_MODPROBE_FILE),
    modules_load_file=dict(type='path', default=boot.DEFAULT_MODULES_LOAD_FILE),
    conntrack_module=dict(type='str', default='auto', choices=['auto', 'builtin', 'loadable']),
    load_module=dict(type='bool', default=False),
)
SYSCTL_ARGSPEC.update(NAMESPACE_ARGSPEC)
SYSCTL_CHECKS = dict(mutually_exclusive=[('name', 'settings')], required_by={'value': 'name'})


def sysctl_task(params, check_mode, run_command, initial_namespace):
    """One conntrack_sysctl task: (result, the SysctlManager that ran it, whose ``undo()`` puts its change back).
    ``run_command(argv)`` -> (rc, out, err) runs modprobe for ``load_module``."""
    load_conntrack(params, check_mode, run_command)
    manager = SysctlManager(params, initial_namespace=initial_namespace, namespace=params.get('namespace'))
    return manager.run(check_mode=check_mode), manager


class SysctlManager(object):
    """Plan and carry out one conntrack_sysctl task.

    ``params`` is the module's params dict. ``initial_namespace`` says whether global
    knobs are writable here. Paths are injectable for tests.
    """

    def __init__(self, params, initial_namespace=True, netfilter_dir=knobs.NETFILTER_DIR, module_kind=None,
                 namespace=None):
        self.params = params
        self.initial_namespace = initial_namespace
        self.namespace = namespace
        self.netfilter_dir = netfilter_dir
        self.warnings = []
        kind = params.get('conntrack_module') or 'auto'
        self.module_kind = module_kind if kind == 'auto' and module_kind else (
            knobs.conntrack_module_kind() if kind == 'auto' else kind)
        self.catalogue = knobs.read_catalogue(netfilter_dir)
        self.loaded = any(not knob.companion for knob in self.catalogue.values())
        self.files = FileChanges()  # the files this run wrote or removed
        self.applied = []  # [(Knob, old value)] written by this run

    # -- input
    def requested(self):
        """[(name as given, value)] from name/value or settings."""
        params = self.params
        if params.get('settings'):
            return list(params['settings'].items())
        if params.get('name'):
            return [(params['name'], params.get('value'))]
        return []

    def validate(self):
        """Resolve and check every requested knob; return [(Knob, int or None)] (None for state=absent)."""
        params = self.params
        state = params.get('state') or 'present'
        apply = params.get('apply', True)
        persist = params.get('persist', False)
        catalogue = self.catalogue
        items = self.requested()
        if not self.loaded:
            if items and state == 'present' and apply:
                raise ConntrackError(
                    'nf_conntrack is not loaded in this kernel (no %s/nf_conntrack_* files); load it first '
                    '(load_module: true) or persist only with apply: false' % self.netfilter_dir)
            catalogue = knobs.static_catalogue(self.netfilter_dir)
        if (persist or state == 'absent') and not self.initial_namespace:
            raise ConntrackError(
                'persist and state=absent manage boot-time files, which are applied in the initial network '
                'namespace only (a network namespace starts from the kernel defaults every time it is '
                'created); set the values with persist: false from whatever creates the namespace, or run '
                'the task on the host without namespace')
        if state == 'present' and params.get('name') and params.get('value') is None:
            raise ConntrackError('name=%s needs a value (state=present)' % params['name'], option='value')
        plan = []
        seen = {}
        for name, value in items:
            try:
                self._check_one(name, value, catalogue, seen, plan, state, apply)
            except ConntrackError as exc:
                raise self._located(exc, name, value)
        if state == 'present':
            try:
                self._check_pairs(plan)
            except ConntrackError as exc:
                if exc.option != 'settings':
                    raise
                raise ConntrackError('settings: %s' % exc.msg, option='settings')
        return plan

    def _located(self, exc, name, value):
        """``exc`` with the option it is about in front: ``settings.NAME``, or ``name``/``value``."""
        if self.params.get('settings'):
            where = 'settings.%s' % name
        elif exc.option == 'value':
            where = 'value %r' % (value,)
        else:
            where = 'name %r' % (name,)
        return ConntrackError('%s: %s' % (where, exc.msg), option=where.split(' ')[0])

    def _check_one(self, name, value, catalogue, seen, plan, state, apply):
        """Check one requested knob and add it to ``plan`` (raises ConntrackError)."""
        knob = knobs.resolve(name, catalogue)
        if knob.short in seen:
            raise ConntrackError('%s is given twice (as %r and %r)' % (knob.sysctl, seen[knob.short], name),
                                 option='settings')
        seen[knob.short] = name
        if knob.read_only:
            raise ConntrackError('%s is read-only: %s' % (knob.sysctl, knobs.why_read_only(knob)), option='name')
        if state == 'absent':
            plan.append((knob, None))
            return
        number = knobs.parse_value(knob, value)
        if apply and knob.scope == 'global' and not self.initial_namespace:
            where = ('namespace %r' % self.namespace) if self.namespace else 'this network namespace'
            raise ConntrackError(
                '%s is global: it can only be changed from the initial network namespace (the host), '
                'not from %s; run the task on the host without namespace (per-namespace knobs such as '
                'timeouts can be set here)' % (knob.sysctl, where), option='name')
        if apply and knob.present and not knob.writable:
            raise ConntrackError('%s is read-only here: %s' % (knob.sysctl, knobs.why_read_only(knob)), option='name')
        plan.append((knob, number))

    def _check_pairs(self, plan):
        wanted = dict((knob.short, value) for knob, value in plan)
        if 'frag6_low_thresh' in wanted or 'frag6_high_thresh' in wanted:
            low = wanted.get('frag6_low_thresh', self._current('frag6_low_thresh'))
            high = wanted.get('frag6_high_thresh', self._current('frag6_high_thresh'))
            if low is not None and high is not None and low > high:
                raise ConntrackError('nf_conntrack_frag6_low_thresh (%d) must not exceed nf_conntrack_frag6_high_thresh '
                                     '(%d)' % (low, high), option='settings')
        if 'max' in wanted and self.params.get('apply', True) and not self.params.get('force'):
            count = self._current('count')
            if wanted['max'] and count is not None and wanted['max'] < count:
                raise ConntrackError(
                    'refusing to set nf_conntrack_max to %d: the table holds %d entries now, so every new flow '
                    'would be dropped until it drains; choose at least %d, or set force: true'
                    % (wanted['max'], count, count), option='value')

    def _current(self, short):
        knob = self.catalogue.get(short)
        return knobs.read_value(knob) if knob else None

    # -- the run
    def run(self, check_mode=False):
        params = self.params
        plan = self.validate()
        state = params.get('state') or 'present'
        result = dict(changed=False, settings={}, files=dict(written=[], removed=[]),
                      initial_namespace=self.initial_namespace, conntrack_module=self.module_kind)
        diffs = []
        if not plan and state == 'present':
            result['catalogue'] = dict((s, k.to_dict(knobs.read_value(k))) for s, k in sorted(self.catalogue.items()))
            return result

        # a failure anywhere puts back what was already changed: the runtime values, then the files
        try:
            if state == 'present' and params.get('apply', True):
                self._apply(plan, check_mode, result, diffs)
            if state == 'present' and params.get('persist'):
                self._persist(plan, check_mode, result, diffs)
            if state == 'absent':
                self._unpersist(plan, check_mode, result, diffs)
            self._proof(result, plan, state, check_mode)
        except ConntrackError as exc:
            exc = self.files.undo(exc)
            unrestored = self._restore(self.applied)
            if unrestored:
                exc = ConntrackError('%s; and these values could not be set back: %s' % (exc.msg, '; '.join(unrestored)),
                                     option=exc.option)
            raise exc
        result['diff'] = diffs
        result['warnings'] = self.warnings
        return result

    def _proof(self, result, plan, state, check_mode):
        """What the result proves, for callers that verify from it instead of reading again: ``in_force`` (every
        value read back after the write equals the one asked for; None when nothing was applied or in check mode),
        ``mismatch`` (the knobs that did not) and ``persisted`` (the sysctl.d file, read back after the write and
        holding every value; None when not persisted or in check mode)."""
        params = self.params
        applied = state == 'present' and params.get('apply', True) and not check_mode
        mismatch = []
        if applied:
            for knob, value in plan:
                now = result['settings'][knob.sysctl]['new']
                if now != value:
                    mismatch.append('%s is %s in the kernel, %s was asked for' % (knob.sysctl, now, value))
        result['in_force'] = (not mismatch) if applied else None
        result['mismatch'] = mismatch
        result['persisted'] = None
        if state == 'present' and params.get('persist') and not check_mode:
            sysctl_file = self._paths()[0]
            values = dict((boot.canonical_key(k), v)
                          for k, v in boot.parse_sysctl_text(read_file(sysctl_file, 'sysctl_file') or '').items())
            missing = [knob.sysctl for knob, value in plan if values.get(knob.sysctl) != str(value)]
            if missing:
                raise ConntrackError('sysctl_file %s does not hold %s after it was written (another writer?)'
                                     % (sysctl_file, ', '.join(missing)), option='sysctl_file')
            result['persisted'] = sysctl_file

    def _apply(self, plan, check_mode, result, diffs):
        before, after, todo = [], [], []
        for knob, value in plan:
            old = knobs.read_value(knob)
            entry = dict(old=old, new=value, changed=old != value)
            result['settings'][knob.sysctl] = entry
            before.append('%s = %s\n' % (knob.sysctl, old))
            after.append('%s = %s\n' % (knob.sysctl, value))
            if old != value:
                todo.append((knob, old, value))
        if not todo:
            return
        result['changed'] = True
        diffs.append(dict(before_header='running kernel (before)', after_header='running kernel (after)',
                          before=''.join(before), after=''.join(after)))
        if check_mode:
            return
        # every value written is recorded at once: run() writes them back if anything later fails
        for knob, old, value in self._write_order(todo):
            knobs.write_value(knob, value)
            self.applied.append((knob, old))
            now = knobs.read_value(knob)
            result['settings'][knob.sysctl]['new'] = now
            if now != value:
                self.warnings.append('%s: wrote %d, the kernel reports %s' % (knob.sysctl, value, now))

    def undo(self):
        """Put back what a successful ``run()`` changed (a later step of the same task failed): the files as they
        were, then the old runtime values. Returns what could not be put back ([] when all was)."""
        failed = ['%s (file)' % path for path in self.files.rollback()]
        failed.extend(self._restore(self.applied))
        self.applied = []
        return failed

    def _restore(self, done):
        """Write the old values back; returns what could not be (also as warnings)."""
        failed = []
        for knob, old in reversed(done):
            if old is None:
                continue
            try:
                knobs.write_value(knob, old)
            except ConntrackError:
                failed.append('%s (was %s)' % (knob.sysctl, old))
                self.warnings.append('could not restore %s to %s' % (knob.sysctl, old))
        return failed

    @staticmethod
    def _write_order(todo):
        """Raise frag6_high before low when growing, low before high when shrinking (kernel checks low <= high)."""
        def key(item):
            knob, old, value = item
            if knob.short == 'frag6_high_thresh':
                return 0 if old is None or value >= old else 2
            if knob.short == 'frag6_low_thresh':
                return 1
            return 1
        return sorted(todo, key=key)

    def _paths(self):
        params = self.params
        # an explicit empty path is an error of that option (refused by the file layer), not the default
        return tuple(default if params.get(key) is None else params[key] for key, default in (
            ('sysctl_file', boot.DEFAULT_SYSCTL_FILE), ('modprobe_file', boot.DEFAULT_MODPROBE_FILE),
            ('modules_load_file', boot.DEFAULT_MODULES_LOAD_FILE)))

    def _persist(self, plan, check_mode, result, diffs):
        sysctl_file, modprobe_file, modules_load_file = self._paths()
        old_text = read_file(sysctl_file, 'sysctl_file')
        values = dict((boot.canonical_key(k), v) for k, v in boot.parse_sysctl_text(old_text).items())
        for knob, value in plan:
            values[knob.sysctl] = str(value)
        desired = {sysctl_file: boot.render_sysctl_text(values)}
        buckets = [value for knob, value in plan if knob.short == 'buckets']
        if self.module_kind == 'loadable':
            if buckets:
                desired[modprobe_file] = boot.render_modprobe_text(buckets[0])
            desired[modules_load_file] = boot.render_modules_load_text()
        elif self.module_kind == 'builtin':
            if buckets and boot.render_sysctl_text(values) != old_text:
                self.warnings.append(
                    'nf_conntrack is built into this kernel: modprobe.d options are never read, so the hash size '
                    'is persisted as net.netfilter.nf_conntrack_buckets in %s (applied at boot by systemd-sysctl); '
                    'the kernel command line parameter nf_conntrack.hashsize=%d sets it even earlier'
                    % (sysctl_file, buckets[0]))
        else:
            self.warnings.append('could not tell whether nf_conntrack is built in or a loadable module; '
                                 'set conntrack_module to write the modprobe.d and modules-load.d files')
        self._sync_files(desired, check_mode, result, diffs)
        later = boot.overriding_files(sysctl_file, [k.sysctl for k, v in plan])
        if later:
            self.warnings.append('these files are applied after %s at boot and override it: %s'
                                 % (sysctl_file, '; '.join(later)))

    def _unpersist(self, plan, check_mode, result, diffs):
        sysctl_file, modprobe_file, modules_load_file = self._paths()
        if not plan:
            desired = {sysctl_file: None, modprobe_file: None, modules_load_file: None}
        else:
            values = dict((boot.canonical_key(k), v) for k, v in boot.parse_sysctl_text(read_file(sysctl_file, 'sysctl_file')).items())
            for knob, value in plan:
                values.pop(knob.sysctl, None)
            desired = {sysctl_file: boot.render_sysctl_text(values)}
            if any(knob.short == 'buckets' for knob, value in plan):
                desired[modprobe_file] = None
            if not values:
                desired[modules_load_file] = None
        self._sync_files(desired, check_mode, result, diffs)

    def _sync_files(self, desired, check_mode, result, diffs):
        options = dict(zip(self._paths(), ('sysctl_file', 'modprobe_file', 'modules_load_file')))
        for path in sorted(desired):
            text = desired[path]
            option = options.get(path)
            old = read_file(path, option)
            mode_ok = text is None or old is None or file_mode(path) == 0o644
            if old == text and mode_ok:
                continue
            if text is None and old is None:
                continue
            result['changed'] = True
            diffs.append(dict(before_header=path if old is not None else '%s (absent)' % path,
                              after_header=path if text is not None else '%s (absent)' % path,
                              before=old or '', after=text or ''))
            if text is None:
                result['files']['removed'].append(path)
                if not check_mode:
                    self.files.remove(path, option)
            else:
                result['files']['written'].append(path)
                if not check_mode:
                    self.files.write(path, text, option=option)


def load_conntrack(params, check_mode, run_command):
    """``load_module``: modprobe nf_conntrack where it is a loadable module that is not loaded yet.
    ``run_command(argv)`` -> (rc, out, err) is the module's (LANG=C, no shell)."""
    if not params.get('load_module') or knobs.read_catalogue() or check_mode:
        return
    if knobs.conntrack_module_kind() != 'loadable':
        return
    rc, out, err = run_command(['modprobe', 'nf_conntrack'])
    if rc != 0:
        raise ConntrackError('load_module: modprobe nf_conntrack failed: %s' % (err or out).strip(),
                             option='load_module')
