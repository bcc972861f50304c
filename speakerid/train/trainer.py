"""Self-supervised SyncNet training: stage 1, refinement, stage 2; and the evaluation.

Recipe (see docs/model.md):

* a batch holds runs of consecutive 0.2 s video windows; every window is scored against its
  own audio (positive, shift 0) and the same audio shifted by every 10 ms step up to ±1 s
  (negatives: |shift| ≥ ``neg_min`` columns; shifts of 1..neg_min−1 columns are neither);
* loss: the contrastive loss ``d²`` for positives and ``max(margin − d, 0)²`` for negatives,
  the negatives' term split evenly between near shifts (< 4 frames) and far ones so the fine
  timing is not drowned by the many easy far shifts;
* plus a multi-way term (``ce_weight``): cross-entropy of a softmax over all the window's shifts
  (logits ``−d²/ce_temp``) with the true shift as the class. The contrastive loss scores each
  pair alone; the single-window task is an arg-min over shifts, and this term trains exactly
  that ranking (learned about 1.7× faster per step in the A/B of docs/experiments.md);
* refinement: score every positive training window with the stage-1 model and drop those
  whose distance is above the threshold that best separates positives from far negatives
  (maximum of P(d_pos ≤ t) − P(d_neg ≤ t), i.e. the equal-prior Bayes point); stage 2
  fine-tunes on the kept windows;
* alignment (``align_cols``): "in-sync" clips are not all in sync (broadcast word clips read a
  frame or two off), so at stage-1 step ``align_at`` and at refinement each clip's own offset is
  measured with the current model and its positives move there (:func:`clip_alignment`);
* weight average (``ema``): the exponential moving average of the weights is what is evaluated,
  aligns, refines and ships (:class:`WeightAverage`).
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..errors import TrainingDataError
from ..model import SyncNet, SyncNetConfig, model_from_checkpoint, read_checkpoint, save_checkpoint
from ..model.weights import export_weights  # noqa: F401  (named here by older imports)
from .cache import clip_geometry, load_clip
from .config import TrainConfig, check_device
from .data import MAX_ALIGN, ClipData, WindowSampler, augment_audio, augment_video, list_cache, load_clips, mfcc_stats
from .average import WeightAverage
from .evaluate import evaluate
from .loss import lr_at, pair_distances, sync_loss
from .refine import refinement_threshold, score_training_windows

class TrainingInterrupted(Exception):
    """Raised after the checkpoint is written when a run stops early (``stop_after``)."""


class Trainer:
    def __init__(self, cfg: TrainConfig, log=None, stop_after: int | None = None):
        if not 0 <= cfg.align_cols <= MAX_ALIGN:
            raise ValueError(f"align_cols must be within 0..{MAX_ALIGN} MFCC columns, got {cfg.align_cols}")
        check_device(cfg.device)
        self.cfg = cfg
        self._stop_after = stop_after  # for tests: checkpoint and stop after this many steps of a stage
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(self.out / "train.log", "a")
        self._log = log
        torch.set_num_threads(cfg.threads)

    def log(self, msg: str, flush: bool = True) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True) if self._log is None else self._log(line)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    # -- data
    def _scan(self, known: dict) -> list[Path]:
        paths = list_cache(self.cfg.cache_dir, "train")
        if self.cfg.groups:
            paths = [p for p in paths if p.parent.name in self.cfg.groups]
        return [p for p in paths if p.as_posix() not in known]

    def _add_clips(self) -> int:
        new = self._scan(self.names)
        if not new:
            return 0
        root = Path(self.cfg.cache_dir) / "train"
        cfg = self.cfg
        cl = load_clips(new, self.pad_value, root, prepare=self.model.prepare_mfcc,
                        reference=self.model.mouth_reference if self.model.config.video_ref else None,
                        geometry=self.model.config.crop_geometry,
                        babble_snr_db=(cfg.babble_snr_lo, cfg.babble_snr_hi) if cfg.augment_babble > 0 else None,
                        seed=cfg.seed + len(self.clips))
        for p, c in zip(new, cl):
            self.names[p.as_posix()] = len(self.clips)
            self.clips.append(c)
        self.sampler.rebuild()
        return len(cl)

    def run(self, resume: bool = False) -> Path:
        """Train (stage 1, refinement, stage 2) from the start or, with ``resume``, from
        ``<out_dir>/latest.pt``; returns the path of the final weights."""
        state_path = self.out / "latest.pt"
        ckpt = read_checkpoint(state_path) if resume and state_path.exists() else None
        if resume and ckpt is None:
            self.log("no checkpoint to resume from; starting fresh")
        torch.manual_seed(self.cfg.seed)
        self.names: dict[str, int] = {}
        self.clips: list[ClipData] = []
        stage, step = self._new_model() if ckpt is None else self._resumed_model(ckpt)
        self.model.to(self.cfg.device)  # before the optimiser and the weight average are made from it
        self._load_data(ckpt)
        self._start_optimiser(ckpt)
        self._open_log()
        if stage == 1:
            self._train_stage(1, step, self.cfg.steps1, self.cfg.lr1)
            self.save(1, self.cfg.steps1)
            self.snapshot("stage1.pt")
            stage, step = 2, 0
            self.refine()
            self.save(2, 0)
        elif stage == 2 and self.refine_info is None:
            self.refine()
            self.save(2, step)
        if stage == 2:
            self._train_stage(2, step, self.cfg.steps2, self.cfg.lr2)
            self.save(3, 0)
            self.snapshot("stage2.pt")
        final = self.out / "final.pt"
        self.snapshot("final.pt")
        self.log(f"done; wall time of the training run {self.elapsed():.0f}s")
        return final

    def _new_model(self) -> tuple[int, int]:
        """A fresh model shaped by the config, its MFCC statistics from the first clips."""
        cfg = self.cfg
        first = [load_clip(p) for p in self._scan({})]
        if not first:
            raise TrainingDataError(f"no training clips under {cfg.cache_dir}/train")
        geometries = sorted({clip_geometry(c) for c in first})
        if len(geometries) > 1:
            raise TrainingDataError(f"{cfg.cache_dir}/train mixes crop geometries {geometries}; use one cache per "
                                    "geometry")
        if cfg.init:  # fine-tuning: the checkpoint's architecture, weights and MFCC statistics
            self.model = model_from_checkpoint(read_checkpoint(Path(cfg.init)))
            if self.model.config.crop_geometry != geometries[0]:
                raise TrainingDataError(f"{cfg.init} was trained on {self.model.config.crop_geometry!r} crops; the "
                                        f"cache holds {geometries[0]!r} ones")
            self.pad_value = self.model.mfcc_mean.numpy().copy()
            return 1, 0
        self.model = SyncNet(SyncNetConfig(width=cfg.width, audio_width=cfg.audio_width, embed_dim=cfg.embed_dim,
                                           mouth_px=cfg.mouth_px, cmn_cols=cfg.cmn_cols, cvn=bool(cfg.cvn),
                                           video_diff=bool(cfg.video_diff), video_ref=cfg.video_ref,
                                           video_ref_raw=bool(cfg.video_ref_raw), crop_geometry=geometries[0]))
        mean, std = mfcc_stats(first, prepare=self.model.prepare_mfcc)
        self.model.mfcc_mean.copy_(torch.from_numpy(mean))
        self.model.mfcc_std.copy_(torch.from_numpy(std))
        self.pad_value = mean
        return 1, 0

    def _resumed_model(self, ckpt: dict) -> tuple[int, int]:
        self.model = model_from_checkpoint(ckpt)
        self.pad_value = self.model.mfcc_mean.numpy().copy()
        return ckpt["extra"]["stage"], ckpt["extra"]["step"]

    def _load_data(self, ckpt: dict | None) -> None:
        """The clips of the cache, with a resumed run's refinement decisions and clip offsets."""
        cfg = self.cfg
        self.sampler = WindowSampler(self.clips, cfg.chunk_len, cfg.group_balance)
        self._add_clips()
        extra = ckpt["extra"] if ckpt is not None else {}
        if extra.get("keep"):
            self._apply_keep(extra["keep"])
        if extra.get("offsets"):
            for name, k in self.names.items():
                self.clips[k].offset = int(extra["offsets"].get(self._rel(name), 0))
        self.log(f"{len(self.clips)} training clips, {sum(c.windows.size for c in self.clips)} usable windows, "
                 f"{len(self.sampler)} runs of {cfg.chunk_len}; params {sum(p.numel() for p in self.model.parameters())}")

    def _start_optimiser(self, ckpt: dict | None) -> None:
        """Optimiser, weight average and random generators: new, or as the checkpoint left them."""
        cfg = self.cfg
        extra = ckpt["extra"] if ckpt is not None else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr1, weight_decay=cfg.weight_decay)
        self.ema = WeightAverage(self.model, cfg.ema) if cfg.ema > 0 else None
        if self.ema is not None and extra.get("ema"):
            self.ema.load_state_dict(extra["ema"])
        self.rng = np.random.default_rng(cfg.seed)
        self.trng = torch.Generator().manual_seed(cfg.seed)
        self.refine_info = None
        if ckpt is not None:
            self.opt.load_state_dict(extra["optimizer"])
            self.rng.bit_generator.state = extra["np_rng"]
            self.trng.set_state(extra["torch_rng"])
            self.refine_info = extra.get("refine")
            self.log(f"resumed stage {extra['stage']} step {extra['step']}")
        self.elapsed0 = extra.get("elapsed", 0.0)
        # a run resumed at the alignment step was saved right after aligning
        self._aligned = bool(extra.get("aligned"))
        self.t_start = time.time()

    def _open_log(self) -> None:
        csv_path = self.out / "train_log.csv"
        new_csv = not csv_path.exists()
        self.csv = open(csv_path, "a", newline="")
        self.writer = csv.writer(self.csv)
        if new_csv:
            self.writer.writerow(["stage", "step", "elapsed_s", "lr", "loss", "pos_loss", "neg_loss", "ce", "d_pos",
                                  "d_neg", "batch_acc", "windows_per_s", "eval_acc_10ms", "eval_acc_frame",
                                  "eval_ema_acc_10ms", "eval_ema_acc_frame"])

    def elapsed(self) -> float:
        return self.elapsed0 + time.time() - self.t_start

    def _rel(self, name: str) -> str:
        """A clip's name relative to the training cache: the key of the per-clip records
        (refinement decisions, offsets) in checkpoints and reports."""
        return Path(name).relative_to(Path(self.cfg.cache_dir) / "train").as_posix()

    def _apply_keep(self, keep: dict) -> None:
        """Restore the refinement's decisions; clips the refinement did not score (cached
        later) are left out of stage 2."""
        names, clips = {}, []
        for name, k in self.names.items():
            rel = self._rel(name)
            if rel in keep:
                self.clips[k].keep = np.asarray(keep[rel], bool)
                names[name] = len(clips)
                clips.append(self.clips[k])
        self.names, self.clips = names, clips
        self.sampler.clips = clips
        self.sampler.rebuild()

    @property
    def result_model(self) -> SyncNet:
        """The weights a stage hands on (refinement scoring, snapshots): the weight average when
        ``ema`` is on, else the trained weights themselves."""
        return self.ema.model if self.ema is not None else self.model

    def _eval(self) -> dict:
        if not list_cache(self.cfg.cache_dir, "eval"):
            return {}
        r = evaluate(self.model, self.cfg.cache_dir, "eval", clip_level=False)
        if self.ema is not None:
            e = evaluate(self.ema.model, self.cfg.cache_dir, "eval", clip_level=False)
            r["ema_acc_10ms"], r["ema_acc_frame"] = e["acc_10ms"], e["acc_frame"]
        self.model.train()
        return r

    def _train_stage(self, stage: int, step: int, total: int, base_lr: float) -> None:
        self.model.train()
        last_ckpt = time.time()
        t_win, n_win = time.time(), 0
        acc_hist: list[dict] = []
        self.log(f"stage {stage}: steps {step}..{total}, lr {base_lr}")
        try:
            self._loop(stage, step, total, base_lr, last_ckpt, t_win, n_win, acc_hist)
        except KeyboardInterrupt:
            self.log("interrupted: writing a checkpoint before exiting")
            self.save(stage, self._step)
            raise

    def _loop(self, stage, step, total, base_lr, last_ckpt, t_win, n_win, acc_hist) -> None:
        cfg, model = self.cfg, self.model
        self._step = step
        while step < total:
            if stage == 1 and cfg.rescan_every and step % cfg.rescan_every == 0 and step > 0:
                added = self._add_clips()
                if added:
                    self.log(f"  +{added} clips from the cache (now {len(self.clips)} clips, {len(self.sampler)} runs)")
            if step % 50 == 0:
                self._threads_from_control_file()
            if stage == 1 and cfg.align_cols and cfg.align_at and step == cfg.align_at and not self._aligned:
                self.align()
                self._aligned = True
                self.save(stage, step)
            lr = lr_at(step, total, base_lr, cfg.warmup if stage == 1 else 20)
            for g in self.opt.param_groups:
                g["lr"] = lr
            b = self.sampler.batch(self.rng, cfg.chunks, speed=cfg.augment_speed, babble=cfg.augment_babble)
            video = augment_video(b["video"], self.trng, cfg.augment, aspect=cfg.augment_aspect,
                                  blur=cfg.augment_blur)
            audio = augment_audio(b["audio"], self.trng, warp=cfg.augment_warp)
            # augmented on the CPU (its generator keeps CPU runs reproducible), trained on cfg.device
            dev = cfg.device
            d = pair_distances(model, video.to(dev), audio.to(dev), cfg.chunk_len)
            loss, st = sync_loss(d, b["valid"].to(dev), b["weight"].to(dev), cfg)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            self.opt.step()
            if self.ema is not None:
                self.ema.update(model)
            step += 1
            self._step = step
            n_win += video.shape[0]
            acc_hist.append(st)
            ev = {}
            if cfg.eval_every and step % cfg.eval_every == 0:
                ev = self._eval()
                if ev:
                    self.log(f"  eval: single-window acc {ev['acc_10ms']:.3f} (10 ms steps), {ev['acc_frame']:.3f} "
                             f"(frame steps) on {ev['windows']} windows")
                    if "ema_acc_10ms" in ev:
                        self.log(f"  eval, weight average: {ev['ema_acc_10ms']:.3f} (10 ms steps), "
                                 f"{ev['ema_acc_frame']:.3f} (frame steps)")
            if step % 20 == 0 or ev or step == total:
                wps = n_win / (time.time() - t_win)
                m = {k: float(np.mean([h.get(k, np.nan) for h in acc_hist])) for k in acc_hist[-1]}
                self.log(f"stage {stage} step {step}/{total} loss {m['loss']:.4f} pos {m['pos_loss']:.3f} "
                         f"neg {m['neg_loss']:.3f} d+ {m['d_pos']:.3f} d- {m['d_neg']:.3f} acc {m['acc']:.3f} "
                         f"lr {lr:.2e} {wps:.0f} win/s {self.elapsed():.0f}s")
                self.writer.writerow([stage, step, round(self.elapsed(), 1), f"{lr:.3e}", f"{m['loss']:.5f}",
                                      f"{m['pos_loss']:.5f}", f"{m['neg_loss']:.5f}", f"{m.get('ce', float('nan')):.5f}",
                                      f"{m['d_pos']:.4f}", f"{m['d_neg']:.4f}", f"{m['acc']:.4f}", f"{wps:.1f}",
                                      f"{ev.get('acc_10ms', '')}", f"{ev.get('acc_frame', '')}",
                                      f"{ev.get('ema_acc_10ms', '')}", f"{ev.get('ema_acc_frame', '')}"])
                self.csv.flush()
                acc_hist.clear()
                t_win, n_win = time.time(), 0
            if time.time() - last_ckpt > cfg.ckpt_minutes * 60:
                self.save(stage, step)
                last_ckpt = time.time()
            if self._stop_after is not None and step >= self._stop_after:
                self.save(stage, step)
                raise TrainingInterrupted(f"stopped after step {step}")

    def _threads_from_control_file(self) -> None:
        # On a shared machine, one thread can beat two (OpenMP threads stall when a core is
        # taken by another process); <out_dir>/threads lets an operator change it mid-run.
        f = self.out / "threads"
        try:
            n = int(f.read_text().strip()) if f.exists() else self.cfg.threads
        except ValueError:
            return
        if n != torch.get_num_threads() and n > 0:
            torch.set_num_threads(n)
            self.log(f"  using {n} thread(s)")

    def refine(self) -> None:
        self.log("refinement: scoring every positive training window with the stage-1 model")
        pos, neg, offsets = self._score_and_align()
        allpos = np.concatenate(pos)
        allpos = allpos[np.isfinite(allpos)]
        thr = refinement_threshold(allpos, neg)
        groups: dict[str, list[int]] = {}
        keep = {}
        for (name, k) in self.names.items():
            c = self.clips[k]
            kk = (pos[k] <= thr) & (offsets[k] is not None)
            c.keep = kk
            keep[self._rel(name)] = kk.tolist()
            g = groups.setdefault(c.group, [0, 0, 0, 0])
            g[0] += kk.size
            g[1] += int((~kk).sum())
            g[2] += 1
            g[3] += int(kk.size > 0 and (~kk).mean() > 0.5)
        self.sampler.rebuild()
        info = {"threshold": thr, "pos_median": float(np.median(allpos)), "neg_median": float(np.median(neg)),
                "pos_quantiles": np.quantile(allpos, [0.1, 0.25, 0.5, 0.75, 0.9]).round(4).tolist(),
                "neg_quantiles": np.quantile(neg, [0.01, 0.05, 0.1, 0.25, 0.5]).round(4).tolist(),
                "groups": {g: {"windows": v[0], "dropped": v[1], "dropped_share": round(v[1] / max(1, v[0]), 4),
                               "clips": v[2], "clips_mostly_dropped": v[3]} for g, v in sorted(groups.items())}}
        self.refine_info = info
        self.keep = keep
        (self.out / "refinement.json").write_text(json.dumps(info, indent=1))
        clip_rows = [{"clip": self._rel(n), "windows": int(self.clips[k].keep.size),
                      "dropped": int((~self.clips[k].keep).sum()),
                      "offset_ms": None if offsets[k] is None else 10 * int(offsets[k]),
                      "median_d_pos": float(np.median(pos[k])) if np.isfinite(pos[k]).any() else None}
                     for n, k in self.names.items()]
        (self.out / "refinement_clips.json").write_text(json.dumps(clip_rows, indent=0))
        self.log(f"refinement threshold {thr:.3f} (positives median {info['pos_median']:.3f}, far negatives median "
                 f"{info['neg_median']:.3f})")
        for g, v in info["groups"].items():
            self.log(f"  {g}: dropped {v['dropped']}/{v['windows']} windows ({100 * v['dropped_share']:.1f}%), "
                     f"{v['clips_mostly_dropped']}/{v['clips']} clips mostly dropped")
        self.log(f"  kept {len(self.sampler)} runs for stage 2")
        self.model.train()

    def _set_alignment(self, offsets: list[int | None]) -> None:
        """Give each clip its measured audio offset (None: unalignable, its windows get no
        weight) and log how far the groups were from their nominal sync."""
        per_group: dict[str, list] = {}
        for c, off in zip(self.clips, offsets, strict=True):
            if c.windows.size == 0:
                continue
            if off is None:
                c.keep = np.zeros(c.windows.size, bool)
            else:
                c.offset = int(off)
            per_group.setdefault(c.group, []).append(off)
        self.sampler.rebuild()
        for g, offs in sorted(per_group.items()):
            o = np.abs([10 * x for x in offs if x is not None])
            if o.size:
                self.log(f"  alignment {g}: {len(offs)} clips, {len(offs) - o.size} unalignable, median |offset| "
                         f"{np.median(o):.0f} ms, {(o > 40).mean():.0%} beyond ±40 ms")
            else:
                self.log(f"  alignment {g}: {len(offs)} clips, all unalignable")

    def align(self) -> None:
        """Measure every clip's own audio offset with the current model and train on it from
        now on (``align_cols``): in-sync footage is not always in sync (lrc_ar's word clips
        read anywhere from −100 to +80 ms, consistently across models; docs/model.md)."""
        self.log(f"alignment: measuring each clip's audio offset within ±{10 * self.cfg.align_cols} ms")
        self._score_and_align()
        self.model.train()

    def _score_and_align(self) -> tuple[list[np.ndarray], np.ndarray, list[int | None]]:
        """Score every training window with the weights a stage hands on and, with
        ``align_cols``, move each clip to its measured offset (:func:`score_training_windows`)."""
        scorer = self.result_model
        scorer.eval()
        pos, neg, offsets = score_training_windows(scorer, self.clips, log=lambda m, flush=True: self.log(m),
                                                   align_cols=self.cfg.align_cols)
        if self.cfg.align_cols:
            self._set_alignment(offsets)
        return pos, neg, offsets

    def save(self, stage: int, step: int) -> None:
        keep = getattr(self, "keep", None)
        if keep is None and (self.refine_info is not None or self._aligned):
            keep = {self._rel(n): self.clips[k].keep.tolist() for n, k in self.names.items()}
        extra = {"stage": stage, "step": step, "optimizer": self.opt.state_dict(),
                 "np_rng": self.rng.bit_generator.state, "torch_rng": self.trng.get_state(),
                 "refine": self.refine_info, "keep": keep, "elapsed": self.elapsed(), "train_config": asdict(self.cfg),
                 "ema": self.ema.state_dict() if self.ema is not None else None, "aligned": self._aligned,
                 "offsets": {self._rel(n): int(self.clips[k].offset) for n, k in self.names.items() if self.clips[k].offset}}
        save_checkpoint(self.model, self.out / "latest.pt", half=False, meta=self._meta(stage, step), extra=extra)
        self.log(f"  checkpoint {self.out / 'latest.pt'} (stage {stage}, step {step})")

    def _meta(self, stage: int, step: int) -> dict:
        groups: dict[str, int] = {}
        for c in self.clips:
            groups[c.group] = groups.get(c.group, 0) + int(c.windows.size)
        return {"stage": stage, "step": step, "train_config": asdict(self.cfg), "windows_per_group": groups,
                "refinement": self.refine_info, "elapsed_s": round(self.elapsed(), 1),
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}

    def snapshot(self, name: str) -> None:
        stage = 3 if name == "final.pt" else (1 if "1" in name else 2)
        save_checkpoint(self.result_model, self.out / name, half=False, meta=self._meta(stage, 0))
        self.log(f"  saved {self.out / name}")
        if self.ema is not None:  # the trained weights themselves, for comparison
            live = self.out / name.replace(".pt", "_live.pt")
            save_checkpoint(self.model, live, half=False, meta=self._meta(stage, 0))
            self.log(f"  saved {live}")

