"""mim metadata: configs/*/metafile.yml and model-index.yml.

``test_repo_metafiles`` checks the repository's metafiles (written by
tools/misc/gen_metafiles.py): every entry names an existing config, its
Parameters equal those of the model built from that config, and the model
index imports exactly these metafiles. The generator itself is tested on a
tiny configs tree built in tmp.
"""
import glob
import os.path as osp

import torch
import yaml
from mmengine.config import Config

from tests.utils import REPO, load_tool, write_config

GEN = 'tools/misc/gen_metafiles.py'


def _metafiles():
    return sorted(glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')))


def test_repo_metafiles(mim_metafiles_cached):
    gen = load_tool(GEN)
    metafiles = _metafiles()
    assert metafiles, ('no configs/*/metafile.yml: generate them with '
                       '`python tools/misc/gen_metafiles.py`')
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    assert sorted(osp.join(REPO, p) for p in index['Import']) == metafiles
    names, params_by_model = set(), {}
    for metafile in metafiles:
        data = yaml.safe_load(open(metafile))
        collections = {c['Name'] for c in data.get('Collections', [])}
        assert data['Models'], f'{metafile} lists no models'
        for m in data['Models']:
            where = f'{osp.relpath(metafile, REPO)}: {m.get("Name")}'
            assert m['Name'] not in names, f'duplicate name: {where}'
            names.add(m['Name'])
            cfg_path = osp.join(REPO, m['Config'])
            assert osp.isfile(cfg_path), f'{where}: no {m["Config"]}'
            assert osp.splitext(osp.basename(cfg_path))[0] == m['Name']
            assert m['In Collection'] in collections, where
            for url in (m.get('Weights'),
                        m.get('Converted From', {}).get('Weights')):
                assert url is None or url.startswith(
                    'https://dl.fbaipublicfiles.com/xcit/'), where
            cfg = Config.fromfile(cfg_path)
            key = (cfg.get('default_scope'), repr(cfg.model))
            if key not in params_by_model:
                params_by_model[key] = gen.count_params(gen.build_model(cfg))
            assert m['Metadata']['Parameters'] == params_by_model[key], where
            if 'FLOPs' in m['Metadata']:
                assert m['Metadata']['FLOPs'] > 0, where
    # every config that follows the naming scheme is listed
    for cfg_path in glob.glob(osp.join(REPO, 'configs', '[!_]*', '*.py')):
        stem = osp.splitext(osp.basename(cfg_path))[0]
        if gen.NAME_RE.search(stem):
            assert stem in names, f'{cfg_path} is missing from the metafiles'


# ----------------------------------------------------------- the generator
CLS = '''
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='xcit_mm.XCiT', arch='t12', patch_size=16),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=192))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=224, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(type='CustomDataset',
                                    pipeline=test_pipeline))
'''

SEG = '''
default_scope = 'mmseg'
crop_size = (128, 128)  # FLOPs measured at the crop size
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor'),
    backbone=dict(type='xcit_mm.XCiT', arch='t12', patch_size=16,
                  out_type='featmap'),
    decode_head=dict(type='FCNHead', in_channels=192, in_index=3,
                     channels=64, num_convs=1, num_classes=150))
'''


def _tiny_tree(root):
    configs = root / 'configs'
    for sub in ('xcit', 'upernet', '_base_'):
        (configs / sub).mkdir(parents=True)
    write_config(str(configs / 'xcit' / 'xcit-t12-p16_in1k.py'), CLS)
    write_config(str(configs / 'xcit' / 'my_experiment.py'), CLS)
    write_config(str(configs / '_base_' / 'xcit-t12-p16_in1k.py'), CLS)
    write_config(
        str(configs / 'upernet' /
            'upernet_xcit-t12-p16_8xb2-160k_ade20k-512x512.py'), SEG)
    return configs


def test_generator_writes_metafiles(tmp_path, capsys):
    import timm
    gen = load_tool(GEN)
    configs = _tiny_tree(tmp_path)
    index = tmp_path / 'model-index.yml'
    readme = configs / 'xcit' / 'README.md'
    readme.write_text(f'# XCiT\n\nintro\n\n{gen.TABLE_START}\nstale\n'
                      f'{gen.TABLE_END}\n\nrecipes\n')
    (configs / 'upernet' / 'README.md').write_text('# no markers\n')
    summary = gen.generate(str(configs), str(index), tables=True)
    printed = capsys.readouterr().out
    assert not summary['failures']
    assert summary['flops']  # xcit_mm.utils.flops counts them
    assert yaml.safe_load(index.read_text()) == {'Import': [
        'configs/upernet/metafile.yml', 'configs/xcit/metafile.yml']}
    assert 'skip configs/xcit/my_experiment.py' in printed

    cls = yaml.safe_load((configs / 'xcit' / 'metafile.yml').read_text())
    assert cls['Collections'][0]['Name'] == 'XCiT'
    (entry, ) = cls['Models']
    assert entry['Name'] == 'xcit-t12-p16_in1k'
    assert entry['Config'] == 'configs/xcit/xcit-t12-p16_in1k.py'
    # exact: the official XCiT-T12/16 has timm's parameter count
    official = timm.create_model('xcit_tiny_12_p16_224', pretrained=False)
    assert entry['Metadata']['Parameters'] == sum(
        p.numel() for p in official.parameters())
    assert entry['Metadata']['Training Data'] == 'ImageNet-1k'
    # the paper: 1.2 GFLOPs for XCiT-T12/16 at 224
    assert 1.1e9 < entry['Metadata']['FLOPs'] < 1.35e9
    assert entry['Results'] == [{
        'Task': 'Image Classification', 'Dataset': 'ImageNet-1k',
        'Metrics': {'Top 1 Accuracy': 77.1}}]
    url = 'https://dl.fbaipublicfiles.com/xcit/xcit_tiny_12_p16_224.pth'
    assert entry['Weights'] == url
    assert entry['Converted From']['Weights'] == url

    # the task README's table carries the same numbers, between the
    # markers; the rest of the README is kept
    zoo = readme.read_text()
    from xcit_mm.utils.flops import FLOPS_DEFINITION
    assert zoo.startswith('# XCiT\n\nintro\n\n' + gen.TABLE_START + '\n'
                          + FLOPS_DEFINITION + '\n\n| ')
    assert zoo.endswith(gen.TABLE_END + '\n\nrecipes\n')
    assert 'stale' not in zoo
    row = next(line for line in zoo.splitlines()
               if line.startswith('| [xcit-t12-p16_in1k]'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[0] == '[xcit-t12-p16_in1k](xcit-t12-p16_in1k.py)'
    assert cells[1] == f'{entry["Metadata"]["Parameters"] / 1e6:.1f}'
    assert cells[3] == '77.1' and url in cells[4]
    assert (configs / 'upernet' / 'README.md').read_text() == \
        '# no markers\n'
    assert 'has no <!-- model-zoo:start -->' in printed
    # --tables-only: the same table from the metafiles on disk
    readme.write_text(zoo.replace(row, '| stale |'))
    assert gen.main(['--configs-root', str(configs), '--index', str(index),
                     '--tables-only']) == 0
    assert readme.read_text() == zoo

    seg = yaml.safe_load((configs / 'upernet' / 'metafile.yml').read_text())
    (entry, ) = seg['Models']
    assert entry['Results'][0]['Metrics'] == {'mIoU': 41.5}
    if gen.DENSE_WEIGHTS:
        assert entry['Weights'].endswith('/ade/upernet_xcit_tiny_12_p16.pth')
    else:  # the official mmseg 0.x file does not load as it is
        assert 'Weights' not in entry
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(
        configs / 'upernet' /
        'upernet_xcit-t12-p16_8xb2-160k_ade20k-512x512.py').model)
    assert entry['Metadata']['Parameters'] == sum(
        p.numel() for p in model.parameters())


def test_generator_stops_on_a_broken_config(tmp_path, capsys):
    gen = load_tool(GEN)
    configs = _tiny_tree(tmp_path)
    write_config(str(configs / 'xcit' / 'xcit-s12-p16_in1k.py'),
                 CLS.replace('ImageClassifier', 'NoSuchClassifier'))
    index = tmp_path / 'model-index.yml'
    assert gen.main(['--configs-root', str(configs), '--index', str(index),
                     '--no-flops']) == 1
    assert 'NoSuchClassifier' in capsys.readouterr().out
    assert not index.exists()
    assert not (configs / 'xcit' / 'metafile.yml').exists()
    # --keep-going leaves it out
    assert gen.main(['--configs-root', str(configs), '--index', str(index),
                     '--no-flops', '--keep-going']) == 0
    cls = yaml.safe_load((configs / 'xcit' / 'metafile.yml').read_text())
    assert [m['Name'] for m in cls['Models']] == ['xcit-t12-p16_in1k']


def test_teacher_is_not_counted():
    gen = load_tool(GEN)
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(4, 4)  # 20
    model.teacher = torch.nn.Linear(100, 100)
    assert gen.count_params(model) == 20
