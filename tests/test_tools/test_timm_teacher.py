"""tools/model_converters/timm_teacher.py: a timm checkpoint (DeiT-style
``model`` wrapper) becomes a teacher checkpoint that DistillImageClassifier
loads."""
import pytest
import timm
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from tests.utils import (
    TINY_ARCH,
    explain,
    load_tool,
    run_tool,
    tiny_teacher_cfg,
)

converter = load_tool('tools/model_converters/timm_teacher.py')


def test_convert_local_timm_file_and_load_as_teacher(tmp_path):
    src_model = timm.create_model('test_resnet', num_classes=3)
    src = str(tmp_path / 'deit_style.pth')
    torch.save(dict(model=src_model.state_dict()), src)
    out = str(tmp_path / 'teacher.pth')
    converter.main(['test_resnet', out, '--src', src,
                       '--num-classes', '3'])

    init_default_scope('mmpretrain')
    student = MODELS.build(dict(
        type='xcit_mm.DistillImageClassifier',
        backbone=dict(type='xcit_mm.XCiT', arch=TINY_ARCH),
        head=dict(type='xcit_mm.DistillClsHead', num_classes=3,
                  in_channels=32),
        teacher=tiny_teacher_cfg(3), teacher_ckpt=out))
    student.load_teacher()
    for k, v in src_model.state_dict().items():
        assert torch.equal(student.teacher.model.state_dict()[k], v), k


def test_wrong_classes_are_refused(tmp_path, capsys):
    src = str(tmp_path / 'src.pth')
    torch.save(timm.create_model('test_resnet', num_classes=3).state_dict(),
               src)
    with pytest.raises(SystemExit) as info:
        converter.main(['test_resnet', str(tmp_path / 'o.pth'), '--src',
                           src, '--num-classes', '4'])
    assert info.value.code == 1
    assert 'timm_teacher.py: error: The weights do not fit timm' in \
        capsys.readouterr().err


def test_download_without_network_names_src(tmp_path):
    """The documented download with no network (HF_HUB_OFFLINE=1 makes
    huggingface_hub fail as it does offline, without trying)."""
    out = str(tmp_path / 'teacher.pth')
    proc = run_tool(['tools/model_converters/timm_teacher.py',
                     'regnety_160.deit_in1k', out], HF_HUB_OFFLINE='1',
                    HF_HUB_CACHE=str(tmp_path / 'hub'))
    assert proc.returncode == 1, explain(proc)
    assert 'Traceback' not in proc.stderr, explain(proc)
    err = ' '.join(proc.stderr.split())
    assert "timm_teacher.py: error: The pretrained weights of timm " \
        "'regnety_160.deit_in1k' could not be downloaded" in err
    assert f'timm_teacher.py regnety_160 {out} --src FILE' in err
