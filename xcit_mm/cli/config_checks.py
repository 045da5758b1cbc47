"""Checks of a config before it is run: ``--cfg-options`` keys and the
checkpoint files it names.

mmengine's ``Config.merge_from_dict`` adds any key it is given, so a typo
in ``--cfg-options model.backbone.drop_pth_rate=0.1`` silently trains
without the intended change. :func:`check_cfg_options` accepts a key when

1. it is already in the config; or
2. its parent is a dict with a ``type`` whose class (looked up in the
   registries, under the config's ``default_scope``) takes an argument of
   that name, e.g. ``model.backbone.with_cp`` for ``xcit_mm.XCiT``, or
   takes ``**kwargs`` all the way up its base classes; or
3. its parent is a known untyped dict whose keys are constructor arguments
   (``train_cfg`` of the loop, ``*_dataloader``, ``optim_wrapper``,
   ``randomness``, a top-level Runner argument), or a free-form dict
   (``model.train_cfg`` / ``model.test_cfg`` of mmdet, ``paramwise_cfg``,
   ``custom_keys``, ``metainfo``, ``data_prefix``, ``backend_args``,
   ``env_cfg``);

and otherwise raises :class:`~xcit_mm.utils.errors.ConfigError` with the
close names. A ``type`` changed by the same options counts: with
``pipeline.0.type=xcit_mm.LoadImageFromFile pipeline.0.on_error=skip``,
``on_error`` is checked against the new type. ``--allow-new-keys`` (tools)
or ``allow_new_keys=True`` turns the check off.

A config file's own variables (``max_epochs = 30``, ``data_root``,
``train_pipeline``, ...) are read only while the file loads: the entries
computed from them (``train_cfg.max_epochs``, ...) already hold their
values, and nothing reads them afterwards. :func:`check_cfg_options`
refuses to set one (``--cfg-options max_epochs=2`` would silently train 30
epochs) and names the entries to set instead.

:func:`check_task_stack` stops a detection or segmentation config early
when mmdet / mmseg cannot run here: the light install
(``tools/install.sh --light``) has mmcv-lite, without the compiled
``mmcv.ops`` that both libraries import.
"""
import copy
import importlib
import importlib.util
import inspect
import os.path as osp
import re
import sys
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from xcit_mm.utils.errors import (
    ConfigError,
    MissingDependencyError,
    MissingFileError,
)
from xcit_mm.utils.suggest import close_names

#: Dicts whose keys are free-form: any new key is accepted.
FREE_FORM = {'paramwise_cfg', 'custom_keys', 'metainfo', 'data_prefix',
             'backend_args', 'env_cfg', 'mp_cfg', 'dist_cfg', 'meta',
             'cfg', 'kwargs'}
#: Dicts that are free-form only under a model (mmdet's rpn/rcnn cfgs).
FREE_UNDER_MODEL = {'train_cfg', 'test_cfg'}
#: Top-level keys that Runner.from_cfg / the tools read besides the
#: Runner's own arguments.
TOP_LEVEL = {'launcher', 'custom_imports', 'default_scope', 'tta_model',
             'tta_pipeline', 'runner_type', 'activation_checkpointing',
             'efficient_conv_bn_eval', 'compile', 'strategy', 'gpu_ids',
             'model_wrapper_cfg', 'find_unused_parameters', 'work_dir',
             'sync_bn', 'resource_limit',
             # read by tools/analysis_tools/knn_eval.py
             'knn_train_dataloader', 'knn_val_dataloader'}


def _init_params(obj: Any) -> Tuple[Set[str], bool]:
    """Argument names of a class (through ``**kwargs`` forwarding to its
    bases) or function, and whether it accepts any keyword."""
    names: Set[str] = set()
    if inspect.isclass(obj):
        chain = [c for c in obj.__mro__ if '__init__' in vars(c)
                 and c is not object]
        funcs = [vars(c)['__init__'] for c in chain]
    else:
        funcs = [obj]
    for func in funcs:
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            return names, True
        names |= {p.name for p in params if p.name != 'self' and p.kind
                  not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


def _resolve_type(type_: Any, scope: Optional[str]) -> List[Any]:
    """Every registered class or function that ``type_`` names."""
    if not isinstance(type_, str):
        return [type_] if callable(type_) else []
    import mmengine.registry as mmreg
    found = []
    for value in vars(mmreg).values():
        if isinstance(value, mmreg.Registry) and value.parent is None:
            try:
                with value.switch_scope_and_registry(scope) as reg:
                    obj = reg.get(type_)
            except Exception:  # a library that cannot import is no match
                obj = None
            if obj is not None and obj not in found:
                found.append(obj)
    return found


def _implicit_class(path: List[str], cfg: Any) -> Optional[Any]:
    """The class built from an untyped well-known dict, or None."""
    from mmengine.optim import OptimWrapper
    from mmengine.runner import (
        EpochBasedTrainLoop,
        IterBasedTrainLoop,
        TestLoop,
        ValLoop,
    )
    if len(path) != 1:
        return None
    key = path[0]
    if key == 'train_cfg':
        by_epoch = (cfg.get('train_cfg') or {}).get('by_epoch', False)
        return EpochBasedTrainLoop if by_epoch else IterBasedTrainLoop
    if key in ('val_cfg', 'test_cfg'):
        return ValLoop if key == 'val_cfg' else TestLoop
    if key == 'optim_wrapper':
        return OptimWrapper
    return None


def _allowed_keys(node: dict, path: List[str], cfg: Any,
                  scope: Optional[str]) -> Tuple[Set[str], bool]:
    """(names that may be added to ``node``, whether anything may be)."""
    from mmengine.runner import Runner
    from torch.utils.data import DataLoader
    if not path:
        names, _ = _init_params(Runner)
        return names | TOP_LEVEL, False
    last = path[-1]
    if last in FREE_FORM or (last in FREE_UNDER_MODEL and 'model' in path[:1]
                             and len(path) > 1):
        return set(), True
    if 'type' in node:
        classes = _resolve_type(node['type'], scope)
        if not classes:  # an unknown type fails later, with suggestions
            return set(), True
        names: Set[str] = set()
        for cls in classes:
            more, open_ = _init_params(cls)
            if open_:
                return names | more, True
            names |= more
        return names, False
    if last.endswith('dataloader') and len(path) == 1:
        names, _ = _init_params(DataLoader)
        return names | {'sampler', 'batch_sampler', 'collate_fn'}, False
    if last == 'randomness' and len(path) == 1:
        return {'seed', 'diff_rank_seed', 'deterministic'}, False
    cls = _implicit_class(path, cfg)
    if cls is not None:
        names, open_ = _init_params(cls)
        if last == 'train_cfg':
            names |= {'by_epoch', 'type'}
        return names - {'runner', 'dataloader'}, open_
    return set(), False


def _walk(cfg: Any, key: str) -> Iterator[Tuple[Any, List[str], str, bool]]:
    """(node, path to node, next part, whether it exists) along ``key``."""
    node, path = cfg, []
    for part in key.split('.'):
        if isinstance(node, (list, tuple)):
            exists = part.isdigit() and int(part) < len(node)
            yield node, path, part, exists
            if not exists:
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            exists = part in node
            yield node, path, part, exists
            if not exists:
                return
            node = node[part]
        else:
            yield node, path, part, False
            return
        path = path + [part]


def check_cfg_options(cfg: Any, options: Dict[str, Any],
                      allow_new_keys: bool = False) -> None:
    """Reject ``--cfg-options`` keys that would silently add nothing useful.

    See the module docstring for the rules.

    Args:
        cfg (Config): The config, before the options are merged.
        options (dict): ``{'a.b.c': value}`` as ``DictAction`` parses them.
        allow_new_keys (bool): Accept every key. Defaults to False.

    Raises:
        ConfigError: a key that is not in the config and not an argument of
            the object it would configure, with close names.
    """
    if allow_new_keys or not options:
        return
    scope = cfg.get('default_scope')
    for key in options:
        check_not_a_variable(cfg, key)
    types = {k: v for k, v in options.items() if k.split('.')[-1] == 'type'}
    if types:  # check the other keys against the types they set
        cfg = copy.deepcopy(cfg)
        cfg.merge_from_dict(types)
    cfg = getattr(cfg, '_cfg_dict', cfg)  # mmengine Config -> ConfigDict
    for key in options:
        for node, path, part, exists in _walk(cfg, key):
            if exists:
                if len(path) + 1 == len(key.split('.')):
                    check_value_type(key, _item(node, part), options[key])
                continue
            _check_new_key(cfg, key, node, path, part, scope)
            rest = key.split('.')[len(path) + 1:]
            if rest and len(path) == 0 and _is_structured(part):
                # a new top-level dict whose keys are known (randomness...)
                _check_new_key(cfg, key, {}, [part], rest[0], scope)
            break  # deeper entries of an accepted new key are fine


def _item(node: Any, part: str) -> Any:
    return node[int(part)] if isinstance(node, (list, tuple)) else node[part]


def check_value_type(key: str, current: Any, value: Any) -> None:
    """Refuse a ``--cfg-options`` value whose type cannot replace the
    config's current one: text for a number or a flag
    (``train_dataloader.batch_size=abc``, ``optimizer.lr=1e-3x``), a
    fraction for a count. ``None`` on either side, an int for a float, and
    a list or tuple for a number (a size given per side) are accepted."""
    if current is None or value is None or (
            isinstance(value, (list, tuple))
            and not isinstance(current, bool)):
        return
    if isinstance(current, bool):
        expected = 'True or False'
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        expected = 'an integer'
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        expected = 'a number'
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        return
    if ok:
        return
    raise ConfigError(
        f'--cfg-options {key}={_short(value)}: {key} is {expected} in the '
        f'config ({_short(current)}), and {_short(value)} is '
        f'{_kind(value)}. '
        f'Give {expected}, e.g. --cfg-options {key}={current!r}.')


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return 'text'
    if isinstance(value, bool):
        return 'a flag'
    return 'a fraction' if isinstance(value, float) else \
        f'a {type(value).__name__}'


def runner_reads(top_key: str) -> bool:
    """Whether the Runner (or the tools) read a top-level config key."""
    from mmengine.runner import Runner
    return top_key in _init_params(Runner)[0] or top_key in TOP_LEVEL


def _paths_holding(node: Any, value: Any, prefix: str = '',
                   skip: str = '') -> Iterator[str]:
    """Config paths (``a.b.0.c``) whose value equals ``value``."""
    if prefix and prefix != skip:
        try:
            if _plain(node) == _plain(value):
                yield prefix
                return
        except Exception:  # noqa: BLE001 - incomparable values
            pass
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for k, v in items:
        yield from _paths_holding(v, value, f'{prefix}.{k}' if prefix else
                                  str(k), skip)


def _plain(value: Any) -> Any:
    """``value`` for comparison: lists for tuples, no ``_scope_`` keys
    (mmengine adds them to dicts inherited from another library), and the
    type beside each scalar (so that True != 1)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return (type(value).__name__, value)


def check_not_a_variable(cfg: Any, key: str) -> None:
    """Refuse ``key`` when its top-level part is a variable of the config
    file that nothing reads after loading (see the module docstring)."""
    top = key.split('.')[0]
    if top not in cfg or runner_reads(top):
        return
    value = cfg.get(top)
    holders = [p for p in _paths_holding(
        getattr(cfg, '_cfg_dict', cfg), value, skip=top)
        if p.split('.')[0] != top and runner_reads(p.split('.')[0])]
    same_name = [p for p in holders if p.split('.')[-1] == top]
    if value is None or isinstance(value, bool):
        holders = same_name  # None / True are everywhere
    else:  # train_cfg.max_epochs before param_scheduler.1.end
        holders = same_name + [p for p in holders if p not in same_name]
    sub = key[len(top):]
    if holders:
        shown = ', '.join(h + sub for h in holders[:6])
        more = (f' (and {len(holders) - 6} more)' if len(holders) > 6
                else '')
        instead = (f'Set the entries that were computed from it instead: '
                   f'{shown}{more}, e.g. --cfg-options {holders[0]}{sub}'
                   '=VALUE.')
    else:
        instead = ('Set the entry of the config that uses it instead (see '
                   'tools/misc/print_config.py).')
    raise ConfigError(
        f'--cfg-options {key}: {top!r} is a variable of the config file '
        f'({top} = {_short(value)}), read only while the file was loaded; '
        'nothing reads it afterwards, so changing it would change nothing. '
        f'{instead}')


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


def _is_structured(top_key: str) -> bool:
    return top_key in ('randomness', 'train_cfg', 'val_cfg', 'test_cfg',
                       'optim_wrapper') or top_key.endswith('dataloader')


def _check_new_key(cfg: Any, key: str, node: Any, path: List[str],
                   part: str, scope: Optional[str]) -> None:
    where = '.'.join(path) or 'the top level'
    if isinstance(node, (list, tuple)):
        raise ConfigError(
            f'--cfg-options {key}: {where} is a list of {len(node)}, so '
            f'{part!r} is not a valid index.')
    if not isinstance(node, dict):
        raise ConfigError(
            f'--cfg-options {key}: {where} is a {type(node).__name__} '
            f'({node!r}), not a dict, so it has no {part!r}. Set {where} '
            'itself instead.')
    allowed, open_ = _allowed_keys(node, path, cfg, scope)
    if open_ or part in allowed:
        return
    close = close_names(part, set(node) | allowed)
    hint = (f" Did you mean {' or '.join(repr(c) for c in close)}?"
            if close else '')
    what = (f'{node["type"]!r} takes no argument {part!r}'
            if 'type' in node else f'{where} has no key {part!r}')
    raise ConfigError(
        f'--cfg-options {key}: no such key in the config, and {what}.'
        f'{hint} mmengine would add it silently and ignore it. Fix the key, '
        'or pass --allow-new-keys to add it anyway.')


#: Config keys whose string value is a checkpoint path.
_CKPT_KEY = re.compile(r'(^|_)(checkpoint|ckpt|pretrained)(_path|_file)?$')


def iter_checkpoint_paths(cfg: Any, prefix: str = ''
                          ) -> Iterator[Tuple[str, str]]:
    """(config key, local path) of every checkpoint file a config names:
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``, and any key such
    as ``checkpoint``, ``teacher_ckpt``, ``pretrained`` with a string value
    (e.g. a distillation teacher). URLs and ``open-mmlab://``-style names
    are skipped."""
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            key = f'{prefix}.{k}' if prefix else str(k)
            if (isinstance(v, str) and _CKPT_KEY.search(str(k)) and v
                    and '://' not in v):
                yield key, v
            else:
                yield from iter_checkpoint_paths(v, key)
    elif isinstance(cfg, (list, tuple)):
        for i, v in enumerate(cfg):
            yield from iter_checkpoint_paths(v, f'{prefix}.{i}')


def check_checkpoint_paths(cfg: Any, keys: Tuple[str, ...] = ('model', )
                           ) -> None:
    """Raise :class:`MissingFileError` for the first checkpoint that
    the config's ``keys`` name and that does not exist (e.g. a pretrained
    backbone, or a distillation teacher)."""
    for top in keys:
        for key, path in iter_checkpoint_paths(cfg.get(top), top):
            if not osp.isfile(osp.expanduser(path)):
                role = ('teacher ' if 'teacher' in key.lower() else
                        'pretrained ' if 'init_cfg' in key or 'pretrained'
                        in key else '')
                raise MissingFileError(
                    f'The {role}checkpoint {path} ({key} in the config) does '
                    'not exist. Download or train it, convert official or '
                    'timm XCiT weights with tools/model_converters/xcit2mm.py'
                    f', or point the config at it: --cfg-options {key}=PATH.')


#: Libraries that import mmcv's compiled ops, and what they run.
NEEDS_MMCV_OPS = {'mmdet': 'detection', 'mmseg': 'segmentation'}


def _scopes_used(cfg: Any) -> List[str]:
    """The libraries of NEEDS_MMCV_OPS that the config builds from: its
    ``default_scope`` and every ``type='mmdet.X'`` / ``'mmseg.X'``."""
    found = []
    scope = cfg.get('default_scope') if hasattr(cfg, 'get') else None
    if scope in NEEDS_MMCV_OPS:
        found.append(scope)
    stack = [cfg if isinstance(cfg, dict) else dict(cfg.items())]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            t = node.get('type')
            if isinstance(t, str) and t.split('.')[0] in NEEDS_MMCV_OPS:
                found.append(t.split('.')[0])
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return list(dict.fromkeys(found))


def _install_command() -> str:
    """``bash tools/install.sh [VENV]`` for the running environment."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cmd = 'bash tools/install.sh'
    in_venv = sys.prefix != getattr(sys, 'base_prefix', sys.prefix)
    if in_venv and osp.realpath(sys.prefix) != osp.realpath(
            osp.join(root, '.venv')):
        cmd += f' {sys.prefix}'
    return cmd


def check_task_stack(cfg: Any, config_name: str = 'The config') -> None:
    """Raise :class:`MissingDependencyError` when the config needs mmdet
    or mmseg and they cannot run in this environment.

    Both import ``mmcv.ops``, the compiled part of mmcv that mmcv-lite (the
    light install) lacks; classification (mmpretrain) never imports it.
    """
    scopes = _scopes_used(cfg)
    if not scopes:
        return
    what = ' and '.join(f'{NEEDS_MMCV_OPS[s]} ({s})' for s in scopes)
    missing = [s for s in scopes if importlib.util.find_spec(s) is None]
    if missing:
        raise MissingDependencyError(
            f'{config_name} runs {what}, but {" and ".join(missing)} '
            'is not installed in this environment. Install the full tested '
            f'stack with `{_install_command()}` (run from the repository '
            'root), or install mmdet 3.3 / mmsegmentation 1.2 and mmcv '
            '2.1.0 with its compiled ops yourself.')
    try:
        importlib.import_module('mmcv.ops')
        return
    except ImportError as e:
        error = e
    upgrade = _install_command()
    # mmcv-lite ships mmcv/ops/*.py but not the compiled mmcv._ext
    if _find_spec('mmcv._ext') is None:
        raise MissingDependencyError(
            f'{config_name} runs {what}, which needs mmcv\'s compiled ops '
            f'(mmcv.ops), and this environment has none ({error}): it is '
            'the light install (mmcv-lite), which runs classification and '
            'tools/demo.py only. Upgrade it to the full install with '
            f'`{upgrade}` (from the repository root; it replaces mmcv-lite '
            'by mmcv 2.1.0 with its compiled ops, from a cached wheel when '
            'there is one, else built from source, about 20 minutes on 2 '
            'cores), then run this command again.')
    raise MissingDependencyError(
        f'{config_name} runs {what}, which needs mmcv\'s compiled ops, and '
        f'mmcv\'s compiled ops are installed but do not load ({error}): '
        'mmcv was '
        'probably built for another torch or Python. Reinstall it with '
        f'`{upgrade}` (from the repository root), which builds mmcv 2.1.0 '
        'for the installed torch when no matching wheel is cached.')


def _find_spec(name: str):
    """``importlib.util.find_spec`` that returns None when a parent
    package is missing too."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def apply_common_args(cfg: Any, args: Any) -> Any:
    """The options ``tools/train.py`` and ``tools/test.py`` share.

    Sets ``cfg.launcher`` and ``work_dir`` from
    ``--work-dir``, else ``./work_dirs/<config name>``. (``--cfg-options``
    are checked and merged by :func:`xcit_mm.cli.load_config`.)
    """
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg
