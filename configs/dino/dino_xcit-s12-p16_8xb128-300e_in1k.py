# DINO pre-training of XCiT-S12/16 on ImageNet-1k: 300 epochs, total batch
# 1024 (8 GPUs x 128), 2 x 224 px + 8 x 96 px views, mixed precision
# (`tools/train.py --amp`). Published: k-NN 76.0, linear 77.8.
_base_ = [
    '../_base_/datasets/imagenet_bs128_dino-multicrop.py',
    '../_base_/schedules/dino_adamw_bs1024_300e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='xcit_mm.DINO',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='xcit_mm.XCiT',
        arch='small-12',
        patch_size=16,
        out_type='cls_token',
        drop_path_rate=0.05),
    head=dict(
        type='xcit_mm.DINOHead',
        in_channels=384,
        out_channels=65536,
        hidden_channels=2048,
        bottleneck_channels=256,
        norm_last_layer=False),
    loss=dict(
        type='xcit_mm.DINOLoss',
        student_temp=0.1,
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=30,
        center_momentum=0.9),
    # the training step: teacher momentum cosine 0.996 -> 1, per-parameter
    # gradient clipping at 3.0, last head layer frozen for 1 epoch
    momentum=0.996,
    end_momentum=1.0,
    clip_grad=3.0,
    clip_mode='per_param',
    freeze_last_layer=1,
)
# DINO converts every BN (XCiT's patch embedding and LPI) to SyncBN in
# multi-GPU runs; mmengine does that for the student and the teacher.
sync_bn = 'torch'
# multi-process runs: mmengine's DDP wrapper would replace DINO's training
# step by a generic one; this one runs DINO.train_step
model_wrapper_cfg = dict(type='xcit_mm.DINODistributedDataParallel',
                         broadcast_buffers=False,
                         find_unused_parameters=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(interval=10, max_keep_ckpts=3, save_best=None))
# the weighted k-NN of the teacher every 50 epochs (add it in the custom
# hooks of a run: it extracts features of the whole training set)
knn_hook = dict(type='xcit_mm.KNNEvalHook', interval=50,
                train_dataloader={{_base_.knn_train_dataloader}},
                val_dataloader={{_base_.knn_val_dataloader}})
