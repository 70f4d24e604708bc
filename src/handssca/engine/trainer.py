"""``handssca train``: the paper's recipe with exact resume, DDP, progress bars and TensorBoard."""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from handssca.allocator import tune_malloc
from handssca.config import Config, resume_differences
from handssca.data.factory import build_dataset
from handssca.data.loader import make_loader
from handssca.engine.distributed import DistInfo, EpochSampler, cleanup_distributed, init_distributed
from handssca.engine.evaluate import compute_metrics, predict
from handssca.engine.rng import capture_rng, restore_rng, seed_everything
from handssca.environment import cpu_has_bf16
from handssca.hand.identity import describe_identity
from handssca.losses import compute_losses
from handssca.model.checkpoint import (
    checkpoint_dict,
    load_weights,
    read_checkpoint,
    recorded_hand_model,
    save_checkpoint,
)
from handssca.model.handssca import build_model

log = logging.getLogger("handssca.train")


def lr_at(cfg: Config, epoch: int) -> float:
    """The official step schedule: lr * factor^(number of milestones <= epoch)."""
    return cfg.train.lr * cfg.train.lr_factor ** sum(1 for m in cfg.train.lr_milestones if m <= epoch)


def _freeze_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


class StopTraining(Exception):
    """Raised inside the loop when a step or time budget is used up."""


class Trainer:
    """Owns the model, optimiser, data and checkpoints of one run (one per process under torchrun)."""

    def __init__(
        self,
        cfg: Config,
        resume: str | None = None,
        info: DistInfo | None = None,
        progress: bool = True,
        resume_anyway: bool = False,
    ) -> None:
        self.cfg = cfg
        self.resume_anyway = resume_anyway
        self.step_batches = 0  # batches of the current epoch consumed at the last optimiser step
        self._in_step, self._pending_signal = False, None
        self.info = info or init_distributed(cfg.train.device)
        self.device = self.info.device
        self.out = Path(cfg.train.out_dir)
        self.progress = progress and self.info.is_main
        seed_everything(cfg.train.seed)
        self.model = build_model(cfg.model).to(self.device)
        if cfg.train.backbone_weights:
            self.model.backbone.load_imagenet_weights(cfg.train.backbone_weights)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
        self.epoch, self.batches_done, self.step = 0, 0, 0
        self.history: list[dict] = []
        self.best: dict = {}
        if resume:
            self._load(resume)
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if self.info.distributed
            else None
        )
        hand = self.model.hand  # one hand model: the network's is the one that converts the datasets' MANO labels
        self.train_set = build_dataset(cfg, cfg.data.train_split, train=True, hand_model=hand)
        self.val_set = build_dataset(cfg, cfg.data.val_split, train=False, hand_model=hand)
        if len(self.train_set) == 0:
            where = f" at {cfg.data.root}" if cfg.data.dataset != "synthetic" else ""
            raise ValueError(
                f"data.train_split: the {cfg.data.train_split!r} split of {cfg.data.dataset}{where} is empty; nothing to train on"
            )
        self.sampler = EpochSampler(len(self.train_set), cfg.train.seed, True, self.info.rank, self.info.world_size)
        self.writer = self._tensorboard() if self.info.is_main else None
        if cfg.train.amp and self.device.type == "cpu" and cpu_has_bf16() is False and self.info.is_main:
            log.warning(
                "train.amp on a CPU without bf16 instructions (no avx512_bf16/amx_bf16 in /proc/cpuinfo): "
                "bf16 is emulated there and usually slower than float32; consider train.amp=false"
            )

    # ------------------------------------------------------------------ signals
    def _catch_signals(self) -> dict:
        """In the main thread: SIGINT and SIGTERM raise KeyboardInterrupt (so the run saves last.pt and
        its DataLoader workers are shut down), deferred to the end of an optimiser step when they come
        during one. Returns the previous handlers to restore."""
        self._in_step, self._pending_signal = False, None
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._in_step:
                self._pending_signal = signum
                return
            raise KeyboardInterrupt(signal.Signals(signum).name)

        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    # ------------------------------------------------------------------ checkpoints
    def _payload(self, complete: bool) -> dict:
        return checkpoint_dict(
            self.model,
            self.cfg.to_dict(),
            optimizer=self.optimizer.state_dict(),
            epoch=self.epoch,
            batches_done=0 if complete else self.step_batches,
            step=self.step,
            rng=capture_rng(),
            history=self.history,
            best=self.best,
            world_size=self.info.world_size,
        )

    def _save(self, name: str, complete: bool) -> Path | None:
        if not self.info.is_main:
            return None
        return save_checkpoint(self.out / name, self._payload(complete))

    def _load(self, path: str) -> None:
        ckpt = read_checkpoint(path)
        for key in ("optimizer", "epoch", "step", "rng"):
            if key not in ckpt:
                raise ValueError(f"{path}: a model-only checkpoint (no {key!r}); --resume needs a training checkpoint")
        diffs = resume_differences(ckpt["config"], self.cfg)
        recorded = recorded_hand_model(ckpt, path)
        if recorded["sha256"] is not None and recorded["sha256"] != self.model.hand.content_hash:
            # the file may move (model.hand_model is resume-safe), but it must stay the same model
            now = describe_identity(self.model.hand.identity())
            diffs.append(f"hand model: {describe_identity(recorded)} -> {now}")
        if ckpt.get("world_size", 1) != self.info.world_size:  # the sampler's shards depend on it
            diffs.append(f"processes (world size): {ckpt.get('world_size', 1)} -> {self.info.world_size}")
        if diffs and not self.resume_anyway:
            raise ValueError(
                f"{path}: the config differs from the checkpoint's in {len(diffs)} setting(s) that break an exact "
                f"resume: {'; '.join(diffs)} (use the same settings, or --resume-anyway to continue regardless)"
            )
        if diffs:
            log.warning("resuming %s with changed settings (not an exact continuation): %s", path, "; ".join(diffs))
        load_weights(self.model, ckpt["model"], path)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: its optimizer state does not fit this model ({e})") from None
        self.epoch, self.batches_done, self.step = ckpt["epoch"], ckpt["batches_done"], ckpt["step"]
        self.step_batches = self.batches_done
        self.history, self.best = list(ckpt.get("history", [])), dict(ckpt.get("best", {}))
        restore_rng(ckpt["rng"])
        log.info("resumed %s at epoch %d (+%d batches), step %d", path, self.epoch, self.batches_done, self.step)

    def _tensorboard(self):
        if not self.cfg.train.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:
            log.warning("tensorboard is not installed (pip install tensorboard): no TensorBoard logs")
            return None
        return SummaryWriter(str(self.out / "tb"))

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        start = time.monotonic()
        stopped = None
        previous = self._catch_signals()
        try:
            while self.epoch < cfg.train.epochs:
                self._train_epoch(start)
                self.step_batches = self.batches_done  # the epoch's batches are all in (validation may still be cut)
                self.batches_done = 0
                metrics = self.validate()
                self.epoch += 1
                self.step_batches = 0
                self._end_epoch(metrics)
        except StopTraining as e:
            stopped = str(e)
            self._save("last.pt", complete=False)
            if self.info.is_main:
                log.info("stopped: %s (checkpoint %s)", stopped, self.out / "last.pt")
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the work done up to the last optimiser step
            path = self._save("last.pt", complete=False)
            if path is not None:
                log.warning("interrupted at step %d: saved %s (continue with --resume %s)", self.step, path, path)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            if self.writer is not None:
                self.writer.flush()
        return {"epoch": self.epoch, "step": self.step, "history": self.history, "best": self.best, "stopped": stopped}

    def _budget_left(self, start: float) -> None:
        t = self.cfg.train
        if t.max_steps is not None and self.step >= t.max_steps:
            raise StopTraining(f"max_steps={t.max_steps} reached")
        if t.time_budget_s is not None and time.monotonic() - start >= t.time_budget_s:
            raise StopTraining(f"time budget of {t.time_budget_s:.0f} s used")

    def _train_epoch(self, start: float) -> None:
        cfg, t = self.cfg, self.cfg.train
        lr = lr_at(cfg, self.epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, start=self.batches_done * t.batch_size)
        loader = make_loader(self.train_set, t.batch_size, self.sampler, cfg.data.num_workers)
        net = self.ddp or self.model
        net.train()
        if t.freeze_bn:
            _freeze_bn(net)
        hand = self.model.hand
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{t.epochs}",
            disable=not self.progress,
            dynamic_ncols=True,
            initial=self.batches_done,
            total=self.batches_done + len(loader),
        )
        tick, seen = time.monotonic(), 0
        self.optimizer.zero_grad(set_to_none=True)
        for batch in bar:
            self._budget_left(start)
            images = batch["image"].to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=t.amp):
                pred = net(images)
            pred = {k: v.float() for k, v in pred.items()}
            batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            losses = compute_losses(pred, batch, hand, t.loss_weights)
            for name, value in losses.items():
                if not torch.isfinite(value):
                    last = self.out / "last.pt"
                    where = f"last good checkpoint: {last}" if last.is_file() else "no checkpoint was written yet"
                    raise FloatingPointError(
                        f"loss term {name!r} is {value.item()} at step {self.step} (epoch {self.epoch + 1}, "
                        f"batch {self.batches_done}); stopping; {where}"
                    )
            (losses["total"] / t.grad_accum).backward()
            self.batches_done += 1
            seen += images.shape[0]
            if self.batches_done % t.grad_accum == 0:
                self._in_step = True  # an interrupt here waits: last.pt must not hold half an update
                try:
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1
                    self.step_batches = self.batches_done
                finally:
                    self._in_step = False
                if self._pending_signal is not None:
                    raise KeyboardInterrupt(signal.Signals(self._pending_signal).name)
                self._log_step(losses, images, pred, batch, seen / max(time.monotonic() - tick, 1e-9), bar)

    def _log_step(self, losses, images, pred, batch, speed: float, bar) -> None:
        t = self.cfg.train
        bar.set_postfix(loss=f"{losses['total'].item():.3f}", img_s=f"{speed * self.info.world_size:.1f}")
        if self.info.is_main:
            log_path = self.out / "train_log.csv"
            new = not log_path.exists()
            with open(log_path, "a") as f:
                if new:
                    f.write("step,epoch,lr,images_per_s," + ",".join(losses) + "\n")
                f.write(
                    f"{self.step},{self.epoch},{self.optimizer.param_groups[0]['lr']:.3g},{speed * self.info.world_size:.2f},"
                    + ",".join(f"{v.item():.6g}" for v in losses.values())
                    + "\n"
                )
        if self.writer is None:
            return
        if self.step % t.log_every == 0:
            for k, v in losses.items():
                self.writer.add_scalar(f"loss/{k}", v.item(), self.step)
            self.writer.add_scalar("lr", self.optimizer.param_groups[0]["lr"], self.step)
            self.writer.add_scalar("speed/images_per_s", speed * self.info.world_size, self.step)
        if t.image_every and self.step % t.image_every == 0:
            from handssca.frames import joints_img_to_pixels
            from handssca.pictures import draw_joints

            img = images[0].detach().float().cpu().numpy().transpose(1, 2, 0)
            size = img.shape[0]
            drawn = draw_joints(
                img, joints_img_to_pixels(batch["joints_img"][0].cpu().numpy(), size), color=(0, 200, 0)
            )
            drawn = draw_joints(
                drawn, joints_img_to_pixels(pred["joints_img"][0].detach().cpu().numpy(), size), color=(230, 30, 30)
            )
            self.writer.add_image("train/joints (green GT, red predicted)", drawn.transpose(2, 0, 1), self.step)

    def validate(self) -> dict[str, float]:
        """Validation metrics on rank 0 (other ranks wait)."""
        metrics: dict[str, float] = {}
        if self.info.is_main and len(self.val_set):
            loader = make_loader(self.val_set, self.cfg.eval.batch_size, None, self.cfg.data.num_workers)
            preds = predict(self.model, loader, self.device, self.progress, desc="validate")
            metrics = compute_metrics(preds, self.model.hand, self.cfg.model.input_size, fscore=False)
        if self.info.distributed:
            torch.distributed.barrier()
        return metrics

    def _end_epoch(self, metrics: dict[str, float]) -> None:
        t = self.cfg.train
        record = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"], **metrics}
        self.history.append(record)
        if not self.info.is_main:
            return
        log.info("epoch %d: %s", self.epoch, ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(f"val/{k}", v, self.step)
        key = metrics.get("pa_mpjpe_mm", math.inf)
        if key < self.best.get("pa_mpjpe_mm", math.inf):
            self.best = {"epoch": self.epoch, **metrics}
            self._save("best.pt", complete=True)
        self._save("last.pt", complete=True)
        if t.checkpoint_every and self.epoch % t.checkpoint_every == 0:
            self._save(f"epoch_{self.epoch}.pt", complete=True)
        (self.out / "history.json").write_text(json.dumps(self.history, indent=2))


def train(cfg: Config, resume: str | None = None, progress: bool = True, resume_anyway: bool = False) -> dict:
    """Train one run (one process of a torchrun job); returns the summary of rank 0. ``resume_anyway``:
    continue from ``resume`` although the config differs in settings that break an exact resume. glibc's
    malloc keeps freed memory for the next step (:func:`handssca.allocator.tune_malloc`)."""
    tune_malloc()
    info = init_distributed(cfg.train.device)
    try:
        return Trainer(cfg, resume, info, progress, resume_anyway).fit()
    finally:
        cleanup_distributed()
