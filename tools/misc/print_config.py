"""Print a config after inheritance (``_base_``) and overrides are merged.

    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...]
        [--save FILE.py]

What is printed is exactly what ``tools/train.py`` would run with the same
``--cfg-options``.
"""
import argparse
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Print the merged config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'model.backbone.drop_path_rate=0.1')
    parser.add_argument('--save', help='also write the merged config here')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = Config.fromfile(args.config)
    except FileNotFoundError as e:
        print(f'print_config: error: {e}', file=sys.stderr)
        return 1
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(f'Config (path: {args.config}):\n{cfg.pretty_text}')
    if args.save:
        cfg.dump(args.save)
        print(f'saved {args.save}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
