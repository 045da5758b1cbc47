"""Errors caused by bad input, and how the tools report them.

Every exception that xcit_mm raises because of the user's input (a config,
a data set, a checkpoint, an image) derives from :class:`XCiTMMError` and
carries a message that names the problem and the fix. ``tools/train.py`` and
``tools/test.py`` print such errors as one paragraph and exit with status 1;
any other exception is a bug and keeps its traceback.

:func:`explain_exception` also translates the few *library* errors that are
bad input in disguise: mmengine's ``KeyError: 'X is not in the
mmpretrain::model registry'`` gets the close registered names, and a
``FileNotFoundError`` the path that is missing.
"""
import difflib
import re
import sys
import textwrap
from typing import Any, Callable, Dict, Iterable, List, Optional


class XCiTMMError(Exception):
    """Base of the errors that bad input causes (printed without a
    traceback by the tools)."""

    def __init__(self, message: str = '', *args: Any) -> None:
        super().__init__(message, *args)

    def __str__(self) -> str:  # KeyError subclasses would quote the message
        return str(self.args[0]) if self.args else ''


class MissingFileError(XCiTMMError, FileNotFoundError):
    """A file or folder a run needs (a dataset, a teacher checkpoint) does
    not exist. The message says how to get it."""


class ConfigError(XCiTMMError, ValueError):
    """A config value that cannot work (unknown key, arch, patch size)."""


class ArchError(XCiTMMError, KeyError):
    """An unknown XCiT architecture name or an incomplete arch dict."""


class InputShapeError(XCiTMMError, ValueError):
    """An input tensor that the model cannot take (channels, size)."""


class DataNotFoundError(XCiTMMError, FileNotFoundError):
    """A data set folder, annotation file or image that does not exist."""


class AnnotationError(XCiTMMError, ValueError):
    """An annotation file that is not what the data set expects."""


class ImageLoadError(XCiTMMError, OSError):
    """An image file that is empty, unreadable or not an image."""


class CheckpointNotFoundError(XCiTMMError, FileNotFoundError):
    """A checkpoint file that a config or command line names is missing."""


class CheckpointMismatchError(XCiTMMError, ValueError):
    """A checkpoint whose tensors do not fit the model being trained or
    tested."""


class MissingDependencyError(XCiTMMError, ImportError):
    """The environment lacks a library (or its compiled part) that the
    config needs, e.g. mmcv's ops on the light install."""


class NonFiniteLossError(XCiTMMError, FloatingPointError):
    """Training met a NaN or infinite loss (``NonFiniteLossHook``)."""


class NonFiniteWeightsError(XCiTMMError, FloatingPointError):
    """A checkpoint about to be written holds NaN or infinite weights."""


_REGISTRY_MISS = re.compile(
    r"^'?(?P<name>[\w.]+) is not in the (?:(?P<scope>[\w]+)::)?"
    r'(?P<registry>[\w ]+?) registry')


def _all_registries(root) -> List:
    """``root`` and all its descendants."""
    out, todo = [], [root]
    while todo:
        reg = todo.pop()
        out.append(reg)
        todo.extend(reg._children.values())
    return out


def _root_registry(registry_name: str):
    import mmengine.registry as mmreg
    for value in vars(mmreg).values():
        if (isinstance(value, mmreg.Registry) and value.parent is None
                and value.name == registry_name):
            return value
    return None


def registry_suggestions(name: str, registry_name: str,
                         scope: Optional[str] = None, n: int = 3) -> List[str]:
    """Registered names close to ``name``, spelled as a config must use them.

    The search covers the registry of ``scope`` and its parents (names as
    they are) and every other scope of the same registry tree (names with
    their scope prefix, e.g. ``'xcit_mm.XCiT'``). Lazy ``locations`` are
    imported first, so every library's modules count.

    Args:
        name (str): The misspelled type, with or without a scope prefix.
        registry_name (str): e.g. ``'model'``, ``'dataset'``, ``'hook'``.
        scope (str, optional): The scope the lookup ran in (the config's
            ``default_scope``). Defaults to None (mmengine's root).
        n (int): At most this many suggestions. Defaults to 3.
    """
    import importlib
    for lib in ('xcit_mm', scope):
        if lib:
            try:
                importlib.import_module(f'{lib}.registry')
            except ImportError:
                pass
    root = _root_registry(registry_name)
    if root is None:
        return []
    local = root._search_child(scope) if scope else None
    if local is None:  # (a Registry with no modules yet is falsy)
        local = root
    chain = []
    reg = local
    while reg is not None:
        chain.append(reg)
        reg = reg.parent
    spellings: Dict[str, List[str]] = {}  # lower bare name -> spellings
    for reg in _all_registries(root):
        try:
            reg.import_from_location()
        except Exception:  # a library that fails to import offers nothing
            continue
        for key in reg.module_dict:
            full = key if reg in chain else f'{reg.scope}.{key}'
            spellings.setdefault(key.lower(), []).append(full)
    prefix = name.rsplit('.', 1)[0] + '.' if '.' in name else None
    bare = name.split('.')[-1].lower()
    out: List[str] = []
    for match in difflib.get_close_matches(bare, list(spellings), n=n,
                                           cutoff=0.6):
        # the scope the user wrote first, then names visible without one
        out += sorted(spellings[match],
                      key=lambda s: (not (prefix and s.startswith(prefix)),
                                     '.' in s))
    return list(dict.fromkeys(out))[:n]


def _one_paragraph(text: str, width: int = 79) -> str:
    """Fill prose to ``width``; keep indented lines (a folder tree, a
    command) as they are, indented under the first line."""
    out, prose = [], []

    def flush():
        if prose:
            # never split a path or a config key across lines
            out.append(textwrap.fill(
                ' '.join(' '.join(prose).split()), width=width,
                initial_indent='  ' if out else '', subsequent_indent='  ',
                break_long_words=False, break_on_hyphens=False))
            prose.clear()

    for line in str(text).splitlines():
        if line[:1].isspace() and line.strip():
            flush()
            out.append('  ' + line.rstrip())
        elif not line.strip():
            flush()
        else:
            prose.append(line)
    flush()
    return '\n'.join(out)


def explain_exception(exc: BaseException) -> Optional[str]:
    """The one-paragraph explanation of a bad-input error, else None.

    None means that ``exc`` is not known to be caused by the input: the
    caller should let it propagate with its traceback.
    """
    from xcit_mm.utils.checkpoint import CheckpointError
    if isinstance(exc, (XCiTMMError, CheckpointError)):
        return str(exc)
    if isinstance(exc, KeyError):
        msg = str(exc.args[0]) if exc.args else ''
        m = _REGISTRY_MISS.match(msg)
        if m:
            name, scope = m.group('name'), m.group('scope')
            registry = m.group('registry')
            close = registry_suggestions(name, registry, scope)
            hint = (f" Did you mean {' or '.join(repr(c) for c in close)}?"
                    if close else ' No registered name is close to it.')
            where = f' (default_scope {scope!r})' if scope else ''
            return (f"Unknown type {name!r} in the config: it is not a "
                    f"registered {registry}{where}.{hint} Fix the `type` in "
                    'the config; a type from another library needs its scope '
                    "prefix, e.g. type='xcit_mm.XCiT' or type='mmdet.FPN'.")
        return None
    if isinstance(exc, FileNotFoundError):
        path = exc.filename or (exc.args[-1] if exc.args else '')
        return (f'File or folder not found: {path}. Check the paths in the '
                'config (data_root, ann_file, data_prefix, load_from, '
                'init_cfg.checkpoint) or override them with --cfg-options '
                'KEY=PATH.')
    return None


def format_tool_error(tool: str, exc: BaseException) -> Optional[str]:
    """``'<tool>: error: <explanation>'`` wrapped as one paragraph, or None
    for an exception that is not a known bad-input error."""
    text = explain_exception(exc)
    if text is None:
        return None
    return _one_paragraph(f'{tool}: error: {text}')


def close_names(word: str, candidates: Iterable[str], n: int = 3) -> List[str]:
    """Case-insensitive close matches of ``word`` among ``candidates``."""
    lower = {c.lower(): c for c in candidates}
    return [lower[c] for c in difflib.get_close_matches(
        word.lower(), list(lower), n=n, cutoff=0.6)]


def _worker_message(exc: BaseException) -> None:
    """torch re-raises a data-loader worker's exception as
    ``type(exc)('Caught X in DataLoader worker process 0. Original
    Traceback ...')``; keep the original message only."""
    msg = str(exc)
    if 'Original Traceback' not in msg:
        return
    last = [line for line in msg.strip().splitlines() if line.strip()][-1]
    name = type(exc).__name__
    if f'{name}: ' in last:
        last = last.split(f'{name}: ', 1)[1]
    exc.args = (last, )


def run_cli(tool: str, main: Callable[[], Any], debug: bool = False) -> Any:
    """Run a tool's ``main``; print bad-input errors as one paragraph.

    A known bad-input error (see :func:`explain_exception`) is printed to
    stderr as ``<tool>: error: ...`` and the process exits with status 1.
    Any other exception propagates with its traceback (a bug), as does
    everything with ``debug=True``.
    """
    try:
        return main()
    except Exception as e:  # noqa: B902
        if debug:
            raise
        _worker_message(e)
        text = format_tool_error(tool, e)
        if text is None:
            raise
        print(text, file=sys.stderr)
        sys.exit(1)


def failed_in_dataset(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a data set was built or read."""
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)
    return any(
        re.search(r'[/\\]datasets?[/\\]|pycocotools', f.filename)
        for f in frames)
