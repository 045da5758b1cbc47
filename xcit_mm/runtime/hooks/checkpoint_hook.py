"""A CheckpointHook that a kill at any moment cannot leave without a
complete checkpoint to resume from."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from xcit_mm.registry import HOOKS
from xcit_mm.runtime.fileio import atomic_write, register_atomic_backend


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with crash-safe ordering.

    mmengine 0.10.7's hook, with ``max_keep_ckpts=k``, first *deletes* the
    oldest checkpoint, then writes the new one, then rewrites
    ``work_dir/last_checkpoint`` with ``open(..., 'w')``. A job killed
    during the write (``max_keep_ckpts=1``) is left with no complete
    checkpoint at all and a pointer to a deleted file; one killed while the
    pointer is rewritten leaves an empty pointer. This hook:

    1. writes the new checkpoint atomically (temporary file + rename,
       through :class:`xcit_mm.runtime.fileio.AtomicLocalBackend`: the
       default ``backend_args`` name it);
    2. then replaces ``last_checkpoint`` atomically;
    3. only then deletes the checkpoints beyond ``max_keep_ckpts``.

    At every instant the pointer names a complete file. Same arguments as
    ``CheckpointHook``; ``backend_args`` defaults to the atomic local
    backend (pass another, e.g. for ``s3://``, to write elsewhere).
    xcit_mm's runtime bases (``configs/_base_/default_runtime.py``) use it
    as ``default_hooks.checkpoint``.
    """

    def __init__(self, *args, backend_args=None, **kwargs) -> None:
        if backend_args is None and kwargs.get('file_client_args') is None:
            backend_args = dict(backend=register_atomic_backend())
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        to_remove = []
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                to_remove.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(self.last_ckpt, osp.join(runner.work_dir,
                                              'last_checkpoint'))
        for old in to_remove:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed checkpoints
                self.file_backend.rmtree(path)
