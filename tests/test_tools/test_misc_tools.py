"""tools/misc: print_config and check_env."""
import re

from tests.utils import REPO, load_tool, run_tool

CHECK_ENV = 'tools/misc/check_env.py'


def test_print_config_merges_base_and_options(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{REPO}/configs/_base_/models/"
                     "xcit-s12-p16.py']\nmodel = dict(head=dict("
                     "num_classes=10))\n")
    saved = tmp_path / 'merged.py'
    proc = run_tool(['tools/misc/print_config.py', str(child),
                     '--cfg-options', 'model.backbone.arch=t12', '--save',
                     str(saved)])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "arch='t12'" in out  # the override
    assert 'num_classes=10' in out  # the child
    assert "type='xcit_mm.XCiT'" in out and 'in_channels=384' in out  # base
    assert "arch='t12'" in saved.read_text()


def test_print_config_missing_file(tmp_path, capsys):
    tool = load_tool('tools/misc/print_config.py')
    assert tool.main([str(tmp_path / 'nope.py')]) == 1
    assert 'nope.py' in capsys.readouterr().err


def test_check_env_reports_versions():
    proc = run_tool([CHECK_ENV])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for label in ('PyTorch', 'CUDA available', 'MMCV', 'MMCV ops',
                  'MMEngine', 'MMPretrain', 'MMDetection', 'MMSegmentation',
                  'timm', 'xcit_mm'):
        assert re.search(rf'^{label}: \S', out, re.M), label
    # one verdict line (which one: test_check_env_verdict)
    assert len(re.findall(r'^(WARNING: not the tested combination|tested '
                          r'combination: yes)', out, re.M)) == 1


def test_check_env_pins_come_from_install_sh_and_tested_txt():
    tool = load_tool(CHECK_ENV)
    pins = tool.read_tested_pins()
    install = open(f'{REPO}/tools/install.sh').read()
    assert f'torch=={pins["torch"]} torchvision=={pins["torchvision"]}' in \
        install
    assert f'MMCV_VERSION={pins["mmcv"]}' in install
    tested = open(f'{REPO}/requirements/tested.txt').read()
    for dist in ('mmengine', 'mmpretrain', 'mmdet', 'mmsegmentation',
                 'timm'):
        assert f'{dist}=={pins[dist]}' in tested


def test_check_env_verdict(tmp_path, capsys):
    """Pins equal to what is installed: 'yes'; one differing: a WARNING
    naming it (exit code 0 either way)."""
    from importlib.metadata import version
    tool = load_tool(CHECK_ENV)
    dists = ('mmengine', 'mmpretrain', 'mmdet', 'mmsegmentation', 'timm',
             'numpy')
    tested = tmp_path / 'tested.txt'
    tested.write_text(''.join(f'{d}=={version(d)}\n' for d in dists))
    install = tmp_path / 'install.sh'
    install.write_text(
        f'TORCH_SPEC="torch=={version("torch")} '
        f'torchvision=={version("torchvision")}"\n'
        f'MMCV_VERSION={version("mmcv")}\n')
    assert tool.main(['--tested', str(tested), '--install-sh',
                      str(install)]) == 0
    out = capsys.readouterr().out
    assert 'tested combination: yes' in out and 'WARNING' not in out

    tested.write_text(f'mmengine==0.0.1\nmmdet=={version("mmdet")}\n')
    assert tool.main(['--tested', str(tested)]) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines()
               if line.startswith('WARNING: not the tested combination')]
    assert len(warning) == 1
    assert 'mmengine' in warning[0] and '(tested 0.0.1)' in warning[0]
    assert 'mmdet' not in warning[0]
