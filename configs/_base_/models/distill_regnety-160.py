# DeiT-style distillation (no distillation token), as in the official XCiT
# `_dist` models: loss = (1 - alpha) * CE(student, mixed + smoothed target)
#                        + alpha * KD(student, teacher),
# with the student's class-token logits in both terms. A config uses it as
#   _base_ = ['./xcit-s12-p16_in1k.py',
#             '../_base_/models/distill_regnety-160.py']
#   model = _base_.distill
distill = dict(
    type='xcit_mm.DistillImageClassifier',
    # The teacher, a full mmpretrain model config: RegNetY-16GF (timm's
    # regnety_160, DeiT's teacher, 82.9% top-1). Any mmpretrain classifier
    # of the same 1000 classes works: a dict, or the path of a config file
    # whose `model` is the teacher (e.g.
    # 'mmpretrain::resnet/resnet50_8xb32_in1k.py'). It gets the student's
    # augmented batch, re-normalised if its data_preprocessor differs.
    teacher=dict(
        type='TimmClassifier',
        model_name='regnety_160',
        num_classes=1000,
        pretrained=False,
        # the input DeiT's RegNetY expects (the same as the student's)
        data_preprocessor=dict(
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True)),
    # Loaded when training starts; see tools/model_converters/timm_teacher.py
    teacher_ckpt='checkpoints/regnety_160_deit_in1k.pth',
    # The head adds the KD term to the classification loss.
    head=dict(
        type='xcit_mm.DistillClsHead',
        # 'hard': CE against the teacher's argmax (DeiT's default);
        # 'soft': KL at temperature tau, times tau^2
        distill_loss=dict(
            type='xcit_mm.DistillationLoss', kd_type='hard', tau=1.0),
        alpha=0.5),
)
