"""check_fit's four rules and load_checked's message, on a small model."""
import pytest
import torch
import torch.nn as nn

from xcit_mm.utils.errors import CheckpointMismatchError
from xcit_mm.utils.state_dict import check_fit, load_checked


def model() -> nn.Module:
    """conv (weight, bias), BN (4 tensors and its counter), linear (2)."""
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4),
                         nn.Linear(4, 2))


def checkpoint(**changes) -> dict:
    """The model's own tensors (all 1), with keys removed (None) or
    replaced."""
    sd = {k: torch.ones_like(v) for k, v in model().state_dict().items()}
    for k, v in changes.items():
        k = k.replace('__', '.')
        if v is None:
            del sd[k]
        else:
            sd[k] = v
    return sd


# the BN counter may be absent in every mode
CASES = {
    'own': (checkpoint(), dict(exact=True, cover=True, partial=True,
                               finetune=True)),
    'no BN counter': (checkpoint(**{'1__num_batches_tracked': None}),
                      dict(exact=True, cover=True, partial=True,
                           finetune=True)),
    'extra key': (checkpoint(extra=torch.zeros(1)),
                  dict(exact=False, cover=True, partial=True,
                       finetune=True)),
    'head of another size': (checkpoint(**{'2__weight': torch.ones(3, 4),
                                           '2__bias': torch.ones(3)}),
                             dict(exact=False, cover=False, partial=False,
                                  finetune=True)),
    'head missing': (checkpoint(**{'2__weight': None, '2__bias': None}),
                     dict(exact=False, cover=False, partial=True,
                          finetune=True)),
}


@pytest.mark.parametrize('case', list(CASES))
@pytest.mark.parametrize('mode', ['exact', 'cover', 'partial', 'finetune'])
def test_check_fit_rules(case, mode):
    sd, fits = CASES[case]
    report = check_fit(model().state_dict(), sd, mode)
    assert report['fits'] is fits[mode]
    # a ratio above what loads fails in every mode
    assert not check_fit(model().state_dict(), sd, mode,
                         min_loaded_ratio=1.01)['fits']


def test_load_checked_loads_what_fits_and_names_what_does_not():
    m = model()
    state, report = load_checked(
        m, {'state_dict': checkpoint(**{'1__num_batches_tracked': None})})
    assert len(state) == 8 and report['missing'] == []  # (no counter)
    assert torch.equal(m[2].weight, torch.ones(2, 4))
    # fine-tuning keeps the new head's own weights
    m = model()
    head = m[2].weight.clone()
    load_checked(m, checkpoint(**{'2__weight': torch.zeros(3, 4),
                                  '2__bias': torch.zeros(3)}),
                 mode='finetune', min_loaded_ratio=0.5)
    assert torch.equal(m[2].weight, head)
    assert torch.equal(m[0].weight, torch.ones(4, 3, 1, 1))
    with pytest.raises(CheckpointMismatchError) as e:
        load_checked(model(), checkpoint(**{'2__weight': torch.zeros(3, 4),
                                            '0__bias': None}),
                     what='the test model', hint='Do this.')
    assert str(e.value) == (
        "The checkpoint does not fit the test model: 7 of 9 tensors load; "
        "1 missing (e.g. ['0.bias']), 1 with another shape (e.g. "
        "['2.weight: checkpoint (3, 4) vs model (2, 4)']), 0 unexpected. "
        'Every tensor of the model must load with its shape and the '
        'checkpoint may hold nothing else. Do this.')
    with pytest.raises(ValueError, match='mode must be one of'):
        check_fit({}, {}, 'loose')
