"""Print a config after inheritance (``_base_``) and overrides are merged.

    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...]
        [--allow-new-keys] [--save FILE.py]

What is printed is the config that ``tools/train.py`` runs with the same
``--cfg-options``, which are checked as train.py checks them (a misspelled
key, or a variable of the config file such as ``max_epochs``, is refused in
one paragraph, exit status 1): the runner, loops, hooks and image loader
included, since train.py adds nothing that the config does not name (only
its own options, such as ``--amp``, change what they name).
"""
import argparse
import sys

from xcit_mm.cli import add_config_args, load_config, run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Print the merged config')
    add_config_args(parser)
    parser.add_argument('--save', help='also write the merged config here')
    return parser.parse_args(argv)


def print_config(args) -> int:
    cfg = load_config(args, builds=False)  # prints only: no mmcv.ops needed
    print(f'Config (path: {args.config}):\n{cfg.pretty_text}')
    if args.save:
        cfg.dump(args.save)
        print(f'saved {args.save}')
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_cli('print_config.py', lambda: print_config(args),
                   debug=args.debug, exit=False)


if __name__ == '__main__':
    sys.exit(main())
