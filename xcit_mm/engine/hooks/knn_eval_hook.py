"""Weighted k-NN accuracy of the frozen features during training."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from xcit_mm.registry import HOOKS
from xcit_mm.utils.errors import ConfigError

MODEL_KEYS = ('teacher', 'student')


@HOOKS.register_module()
class KNNEvalHook(Hook):
    """Run DINO's weighted k-NN every ``interval`` epochs and log it.

    The same computation as the offline k-NN evaluation
    (:func:`xcit_mm.evaluation.evaluate_knn`, split over the processes of
    a multi-process run): class-token features of
    the frozen backbone, L2-normalised, cosine similarity, votes weighted by
    ``exp(sim / temperature)``. Logged as ``knn/top1_k{k}`` (and
    ``knn/top5_k{k}``), in percent.

    Args:
        train_dataloader (dict): The labelled memory bank (training images
            with the evaluation pipeline).
        val_dataloader (dict): The images to classify.
        interval (int): Epochs between evaluations (and after the last
            epoch). Defaults to 1.
        model_key (str): ``'teacher'`` (DINO's choice) or ``'student'``.
            Defaults to ``'teacher'``.
        ks (Sequence[int]): Defaults to (10, 20, 100, 200).
        temperature (float): Defaults to 0.07.
    """

    priority = 'LOW'

    def __init__(self,
                 train_dataloader: dict,
                 val_dataloader: dict,
                 interval: int = 1,
                 model_key: str = 'teacher',
                 ks: Sequence[int] = (10, 20, 100, 200),
                 temperature: float = 0.07) -> None:
        if model_key not in MODEL_KEYS:
            raise ConfigError(f'KNNEvalHook model_key must be one of '
                              f'{MODEL_KEYS}, got {model_key!r}.')
        self.train_dataloader = train_dataloader
        self.val_dataloader = val_dataloader
        self.interval = interval
        self.model_key = model_key
        self.ks = tuple(ks)
        self.temperature = temperature
        self._loaders = None

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or \
                self.is_last_train_epoch(runner):
            self.evaluate(runner)

    def evaluate(self, runner) -> Optional[dict]:
        from xcit_mm.evaluation import evaluate_knn
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if self._loaders is None:
            self._loaders = [
                runner.build_dataloader(cfg, seed=runner.seed)
                for cfg in (self.train_dataloader, self.val_dataloader)
            ]
        backbone = model.teacher['backbone'] if self.model_key == 'teacher' \
            else model.backbone
        results = evaluate_knn(backbone, model.data_preprocessor,
                               *self._loaders, ks=self.ks,
                               temperature=self.temperature).accuracy
        for k, (top1, top5) in results.items():
            runner.message_hub.update_scalar(f'knn/top1_k{k}', top1)
            runner.message_hub.update_scalar(f'knn/top5_k{k}', top5)
        print_log(
            f'Epoch {runner.epoch + 1} weighted k-NN ({self.model_key}, T='
            f'{self.temperature}) top-1: ' + ', '.join(
                f'k={k} {r[0]:.2f}' for k, r in results.items()),
            logger='current')
        runner.visualizer.add_scalars(
            {f'knn/top1_k{k}': r[0] for k, r in results.items()},
            step=runner.iter)
        return results
