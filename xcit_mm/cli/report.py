"""How the tools read a config and report bad input.

Every tool that reads a config adds the same options with
:func:`add_config_args` (``--cfg-options``, ``--allow-new-keys``,
``--debug``) and reads it with :func:`load_config`, which checks that the
file exists and checks the ``--cfg-options`` keys
(:func:`xcit_mm.cli.config_checks.check_cfg_options`) before merging them.

:func:`run_cli` wraps a tool's ``main``. An exception caused by the input
(:class:`xcit_mm.utils.errors.XCiTMMError`, and the few *library* errors
that are bad input in disguise, see :func:`explain_exception`) is printed as
``<tool>: error: ...``, filled to one paragraph, and the process exits with
status 1. Any other exception is a bug and keeps its traceback.

The library's messages speak of config keys and the Python API; the
command-line wording is added here (:func:`command_line_hint`), from the
``config_keys`` and ``remedy`` an error carries.
"""
import argparse
import os.path as osp
import pickle
import re
import sys
import textwrap
from typing import Any, Callable, Optional

from xcit_mm.runtime.checkpoint import refused_global
from xcit_mm.utils.errors import MissingFileError, XCiTMMError
from xcit_mm.utils.suggest import registry_suggestions

_REGISTRY_MISS = re.compile(
    r"^'?(?P<name>[\w.]+) is not in the (?:(?P<scope>[\w]+)::)?"
    r'(?P<registry>[\w ]+?) registry')

#: The command-line form of each fix of
#: :data:`xcit_mm.utils.errors.REMEDIES`, as a sentence.
REMEDY_COMMANDS = {
    'convert-xcit': 'Converter: python tools/model_converters/xcit2mm.py '
    'SRC DST [--backbone-only].',
    'convert-crossformer': 'Converter: python '
    'tools/model_converters/crossformer2mm.py SRC DST [--backbone-only].',
    'teacher-checkpoint': 'To download and save it: python '
    'tools/model_converters/timm_teacher.py regnety_160.deit_in1k PATH '
    '(with --src FILE it converts a file you already have).',
    'sample-data': 'Without the data, python tools/demo.py runs the same '
    'tools on a small built-in data set.',
}


def one_paragraph(text: str, width: int = 79) -> str:
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
    if isinstance(exc, XCiTMMError):
        hint = command_line_hint(exc)
        return f'{exc}\n{hint}' if hint else str(exc)
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
    if isinstance(exc, pickle.UnpicklingError) and \
            'Weights only load failed' in str(exc):
        # mmengine's own loader on torch >= 2.6, in a config that does not
        # name xcit_mm's runtime
        what = refused_global(str(exc))
        return ('The checkpoint could not be read with '
                "torch.load(weights_only=True), the default of torch >= 2.6 "
                f'({what}); mmengine 0.10 loads it so because the config '
                "does not name xcit_mm's runtime. Add runner_type = "
                "'xcit_mm.Runner' to the config (or inherit "
                "configs/_base_/default_runtime.py, runtime_mmdet.py or "
                'runtime_mmseg.py): it reads checkpoints with an allow-list '
                "of what mmengine pickles, and refuses anything that could "
                'run code.')
    if isinstance(exc, FileNotFoundError):
        path = exc.filename or (exc.args[-1] if exc.args else '')
        return (f'File or folder not found: {path}. Check the paths in the '
                'config (data_root, ann_file, data_prefix, load_from, '
                'init_cfg.checkpoint) or override them with --cfg-options '
                'KEY=PATH.')
    return None


def command_line_hint(exc: BaseException) -> str:
    """The command-line form of the fix an error carries, or ``''``.

    ``config_keys`` become ``--cfg-options KEY=VALUE ...`` and a known
    ``remedy`` its command (:data:`REMEDY_COMMANDS`).
    """
    parts = []
    keys = getattr(exc, 'config_keys', ())
    if keys:
        value = getattr(exc, 'config_value', 'VALUE')
        parts.append('On the command line: --cfg-options ' +
                     ' '.join(f'{k}={value}' for k in keys) + '.')
    command = REMEDY_COMMANDS.get(getattr(exc, 'remedy', None))
    if command:
        parts.append(command)
    return ' '.join(parts)


def format_tool_error(tool: str, exc: BaseException) -> Optional[str]:
    """``'<tool>: error: <explanation>'`` wrapped as one paragraph, or None
    for an exception that is not a known bad-input error."""
    text = explain_exception(exc)
    if text is None:
        return None
    return one_paragraph(f'{tool}: error: {text}')


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


def run_cli(tool: str, main: Callable[[], Any], debug: bool = False,
            exit: bool = True) -> Any:
    """Run a tool's ``main``; print bad-input errors as one paragraph.

    A known bad-input error (see :func:`explain_exception`) is printed to
    stderr as ``<tool>: error: ...`` and the process exits with status 1
    (with ``exit=False``: 1 is returned, for a ``main`` whose return value
    is the exit status). Any other exception propagates with its traceback
    (a bug), as does everything with ``debug=True``.
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
        if not exit:
            return 1
        sys.exit(1)


def failed_in_dataset(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a data set was built or read."""
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)
    return any(
        re.search(r'[/\\]datasets?[/\\]|pycocotools', f.filename)
        for f in frames)


def add_config_args(parser: argparse.ArgumentParser,
                    config: bool = True) -> argparse.ArgumentParser:
    """Add the config options that every tool shares.

    ``config`` (positional, when ``config=True``), ``--cfg-options``,
    ``--allow-new-keys`` and ``--debug``. Read the result with
    :func:`load_config`.
    """
    from mmengine.config import DictAction
    if config:
        parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'model.backbone.drop_path_rate=0.1 train_cfg.max_epochs=2; a key '
        'must exist in the config or be an argument of the object it '
        'configures, and must not be a variable of the config file '
        '(set train_cfg.max_epochs, not max_epochs)')
    parser.add_argument('--allow-new-keys', action='store_true',
                        help='accept any --cfg-options key')
    parser.add_argument('--debug', action='store_true',
                        help='show tracebacks of bad-input errors')
    return parser


def load_config(args: Any, path: Optional[str] = None,
                builds: bool = True):
    """Read ``args.config`` (or ``path``) and merge ``--cfg-options``.

    With ``builds=True`` (a tool that builds the config's model or data
    pipeline), a detection or segmentation config is first checked to be
    runnable here (:func:`~xcit_mm.cli.config_checks.check_task_stack`:
    on the light install it says how to upgrade).

    Raises:
        MissingFileError: the config file does not exist.
        MissingDependencyError: ``builds`` and mmdet / mmseg cannot run.
        ConfigError: a ``--cfg-options`` key that would be silently
            ignored (unknown, or a variable of the config file).
    """
    from mmengine.config import Config

    from xcit_mm.cli.config_checks import check_cfg_options, check_task_stack
    path = path or args.config
    if not osp.isfile(path):
        raise MissingFileError(f'The config file {path} does not exist '
                               '(configs/ holds the shipped ones).')
    cfg = Config.fromfile(path)
    if builds:
        check_task_stack(cfg, f'The config {path}')
    options = getattr(args, 'cfg_options', None)
    if options:
        check_cfg_options(cfg, options,
                          getattr(args, 'allow_new_keys', False))
        cfg.merge_from_dict(options)
    return cfg
