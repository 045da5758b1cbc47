# The CrossFormer COCO optimisation over 36 epochs (3x): as the 1x schedule,
# lr x0.1 at epochs 27 and 33 (mmdet's 3x steps; the official repository
# lists 3x results but publishes no 3x config).
_base_ = './crossformer-det_adamw_1x.py'

train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True,
         milestones=[27, 33], gamma=0.1),
]
