"""The tools on a checkpoint of one's own DINO run, and at the DINO /
digits configs' own input size: xcit2mm.py and dino2mm.py take the teacher
(or the student when asked) and say which, visualize_attention.py draws the
teacher at the config's 32 px, get_flops.py counts at 32 px.

The checkpoint is the model of ``configs/dino/dino_xcit-digits_demo.py``
saved in the Runner's layout (``meta`` + ``state_dict`` with the student's
``backbone.*`` / ``head.*`` and the ``teacher.*`` copy), its teacher moved
away from the student as training does.
"""
import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from tests.utils import REPO, load_tool
from xcit_mm.runtime.checkpoint import safe_load
from xcit_mm.utils.flops import config_input_shape

DINO_DIGITS = f'{REPO}/configs/dino/dino_xcit-digits_demo.py'
DIGITS = (DINO_DIGITS, f'{REPO}/configs/xcit/xcit-digits_demo.py',
          f'{REPO}/configs/crossformer/crossformer-digits_demo.py')
XCIT2MM = 'tools/model_converters/xcit2mm.py'
DINO2MM = 'tools/model_converters/dino2mm.py'
ATTN = 'tools/analysis_tools/visualize_attention.py'


@pytest.fixture(scope='module')
def dino_ckpt(tmp_path_factory):
    from mmpretrain.registry import MODELS
    root = tmp_path_factory.mktemp('dino_run')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DINO_DIGITS).model)
    model.init_weights()
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = model.state_dict()
    path = str(root / 'epoch_30.pth')
    torch.save(dict(meta=dict(epoch=30, iter=690), state_dict=state), path)
    nets = {
        'teacher': {k[len('teacher.backbone.'):]: v for k, v in state.items()
                    if k.startswith('teacher.backbone.')},
        'student': {k[len('backbone.'):]: v for k, v in state.items()
                    if k.startswith('backbone.')},
    }
    return dict(path=path, root=root, state=state, **nets)


def _backbone(path):
    sd = safe_load(path)['state_dict']
    assert not any(k.startswith('head.') for k in sd)
    return {k[len('backbone.'):]: v for k, v in sd.items()}


def _same(converted, network):
    return all(torch.equal(v, network[k]) for k, v in converted.items())


def test_converters_take_the_teacher(dino_ckpt, capsys):
    xcit2mm = load_tool(XCIT2MM)
    root, ckpt = dino_ckpt['root'], dino_ckpt['path']
    for name, extra in (('dense', ['--backbone-only']), ('cls', []),
                        ('student', ['--key', 'student'])):
        assert xcit2mm.main([ckpt, str(root / f'{name}.pth'), *extra]) == 0
    out = capsys.readouterr().out
    assert out.count('DINO training checkpoint: read the teacher backbone '
                     '(--key student for the student)') == 2, out
    assert 'read the student backbone (--key teacher' in out
    dense = _backbone(root / 'dense.pth')
    assert 'cls_token' not in dense and _same(dense, dino_ckpt['teacher'])
    cls = _backbone(root / 'cls.pth')
    assert set(cls) == set(dino_ckpt['teacher'])
    assert _same(cls, dino_ckpt['teacher'])
    assert _same(_backbone(root / 'student.pth'), dino_ckpt['student'])
    assert not _same(cls, dino_ckpt['student'])

    assert load_tool(DINO2MM).main([ckpt, str(root / 'dino2mm.pth')]) == 0
    assert 'read the teacher backbone' in capsys.readouterr().out
    assert _same(_backbone(root / 'dino2mm.pth'), dino_ckpt['teacher'])

    # a student saved on its own, with DINO's projection head: the refusal
    # names the fix
    student = {k: v for k, v in dino_ckpt['state'].items()
               if k.startswith(('backbone.', 'head.'))}
    torch.save(dict(state_dict=student), str(root / 'student_only.pth'))
    with pytest.raises(SystemExit) as e:
        xcit2mm.main([str(root / 'student_only.pth'), str(root / 'x.pth')])
    assert e.value.code == 1
    err = ' '.join(capsys.readouterr().err.split())
    assert 'not a linear classifier' in err and '--backbone-only' in err


def test_visualize_attention_draws_the_teacher_at_the_config_size(
        dino_ckpt, capsys):
    root = dino_ckpt['root']
    img = np.random.default_rng(1).integers(0, 255, (40, 52, 3), np.uint8)
    cv2.imwrite(str(root / 'digit.png'), img)
    tool = load_tool(ATTN)
    arrays = {}
    for name, extra in (('default', []),
                        ('teacher', ['--checkpoint-key', 'teacher']),
                        ('student', ['--checkpoint-key', 'student'])):
        assert tool.main([DINO_DIGITS, dino_ckpt['path'],
                          str(root / 'digit.png'), '--out-dir',
                          str(root / name), *extra]) == 0
        arrays[name] = dict(np.load(root / name / 'attention.npz'))
    out = capsys.readouterr().out
    assert 'DINO training checkpoint: read the teacher backbone ' \
        '(--checkpoint-key student for the student)' in out
    # the config's global crop is 32 px: short side 32, cropped to whole
    # 8 px patches (52 * 32 / 40 = 41.6 -> 40)
    assert arrays['default']['image'].shape == (32, 40, 3)
    assert 'input 40x32 -> 5x4 patches of 8 px' in out
    np.testing.assert_array_equal(arrays['default']['cls_attn'],
                                  arrays['teacher']['cls_attn'])
    assert not np.allclose(arrays['default']['cls_attn'],
                           arrays['student']['cls_attn'], atol=1e-4)


def test_digits_configs_own_input_size(capsys):
    for config in DIGITS:
        assert config_input_shape(Config.fromfile(config))[1:] == (32, 32), \
            config
    assert load_tool('tools/analysis_tools/get_flops.py').main(
        [DINO_DIGITS]) == 0
    assert 'input:   1x3x32x32' in capsys.readouterr().out
