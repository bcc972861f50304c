"""Training: a tiny SyncNet learns on generated data, and checkpoints resume exactly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speakerid.errors import TrainingDataError
from speakerid.model import SyncNet, SyncNetConfig, load_model, read_checkpoint
from speakerid.train.data import MAX_ALIGN, MAX_SHIFT, PAD, ClipData, WindowSampler
from speakerid.train.loop import (TrainConfig, Trainer, WeightAverage, aggregate_offset, clip_alignment,
                                  pair_distances,
                                  refinement_threshold,
                                  TrainingInterrupted,
                                  single_window_accuracy, sync_loss)


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: thread start-up and contention cost more than they save on a busy CI box
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _synthetic_clip(rng: np.random.Generator, n_frames: int = 60, name: str = "c") -> ClipData:
    """A 'mouth' whose opening follows a random loudness curve that also drives the MFCC: the
    audio-visual correspondence the model has to find, with exact ground-truth timing."""
    T = 4 * n_frames
    loud = np.convolve(rng.random(T + 40), np.ones(9) / 9, "same")[20:20 + T]
    mfcc = rng.normal(0, 0.3, (13, T)).astype(np.float32)
    mfcc[0] += 8 * loud
    mfcc[1] -= 4 * loud
    crops = np.full((n_frames, 111, 111), 90, np.uint8)
    yy = np.arange(111)[:, None]
    for f in range(n_frames):
        h = 4 + 30 * loud[4 * f:4 * f + 4].mean()
        crops[f][(np.abs(yy - 55) < h) & (np.abs(np.arange(111)[None] - 55) < 30)] = 220
    pad = np.zeros((13, PAD), np.float32)
    w = np.arange(n_frames - 4)
    return ClipData(name=name, group="synthetic", crops=crops, mfcc_padded=np.concatenate([pad, mfcc, pad], 1),
                    num_cols=T, windows=w, keep=np.ones(w.size, bool))


def test_tiny_model_loss_falls():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    clips = [_synthetic_clip(rng, name=f"c{i}") for i in range(4)]
    cfg = TrainConfig(chunks=4, chunk_len=4, margin=1.2)
    sampler = WindowSampler(clips, cfg.chunk_len)
    model = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    fixed = sampler.batch(np.random.default_rng(1), 6)
    losses = []
    for step in range(40):
        b = fixed if step % 2 == 0 else sampler.batch(rng, 6)
        d = pair_distances(model, b["video"].float(), b["audio"], cfg.chunk_len)
        loss, st = sync_loss(d, b["valid"], b["weight"], cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 2 == 0:
            losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:2]), losses


def test_pair_distances_match_direct_embedding():
    rng = np.random.default_rng(3)
    clip = _synthetic_clip(rng)
    s = WindowSampler([clip], 3)
    b = s.batch(rng, 2)
    model = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=16)).eval()
    with torch.no_grad():
        d = pair_distances(model, b["video"], b["audio"], 3)
        # window 1 of run 0 at shift +7 columns, computed the slow way
        a = b["audio"][0, :, 4 * 1 + MAX_SHIFT + 7: 4 * 1 + MAX_SHIFT + 7 + 20][None]
        direct = model(b["video"][1:2], a)
    assert d[1, MAX_SHIFT + 7].item() == pytest.approx(direct.item(), abs=1e-4)


def test_loss_ignores_invalid_and_dropped_windows():
    cfg = TrainConfig()
    d = torch.full((2, 2 * MAX_SHIFT + 1), 1.0, requires_grad=True)
    valid = torch.ones_like(d, dtype=torch.bool)
    weight = torch.tensor([1.0, 0.0])
    loss, _ = sync_loss(d, valid, weight, cfg)
    loss.backward()
    assert torch.all(d.grad[1] == 0) and torch.any(d.grad[0] != 0)


def test_refinement_threshold_separates():
    rng = np.random.default_rng(0)
    pos = np.concatenate([rng.normal(0.5, 0.1, 900), rng.normal(1.2, 0.1, 100)])  # 10% bad positives
    neg = rng.normal(1.2, 0.1, 5000)
    t = refinement_threshold(pos, neg)
    assert 0.7 < t < 1.0
    assert abs((pos > t).mean() - 0.1) < 0.02


def test_accuracy_and_aggregate_offset():
    curves = np.ones((4, 2 * MAX_SHIFT + 1))
    curves[0, MAX_SHIFT + 2] = 0  # within a frame
    curves[1, MAX_SHIFT + 40] = 0  # wrong
    curves[2, MAX_SHIFT] = 0
    curves[3, MAX_SHIFT - 4] = 0
    curves[0, MAX_SHIFT + 4] = 0.05  # its best whole-frame shift
    curves[1, MAX_SHIFT] = 0.5  # second best: the truth
    r = single_window_accuracy(curves)
    assert r["acc_10ms"] == pytest.approx(0.75)
    # window 1's minimum is 400 ms out: a far error, and a ±200 ms search cannot see it
    assert r["far_error_share"] == pytest.approx(0.25)
    assert r["acc_frame"] == pytest.approx(0.75) and r["acc_frame_near"] == pytest.approx(1.0)
    curves = np.ones((6, 2 * MAX_SHIFT + 1)) + np.random.default_rng(0).random((6, 2 * MAX_SHIFT + 1)) * 0.1
    curves[:, MAX_SHIFT + 12] = 0.2
    assert aggregate_offset(curves)[0] == 12


def _fake_cache(tmp_path, rng, geometry: str | None = None) -> None:
    """A cache directory in the format of speakerid.train.cache with synthetic clips
    (``geometry``: the crop geometry written into each clip's meta; None = not recorded)."""
    meta = {"group": "synthetic"} if geometry is None else {"group": "synthetic", "crop_geometry": geometry}
    for split, n in (("train/synthetic", 3), ("eval", 1)):
        d = tmp_path / "cache" / split
        d.mkdir(parents=True)
        for i in range(n):
            c = _synthetic_clip(rng, n_frames=50)
            mfcc = c.mfcc
            np.savez(d / f"clip{i}.npz", crops=c.crops, usable=np.ones(50, bool), shot=np.zeros(50, np.int16),
                     mfcc=mfcc, meta=json.dumps(meta))


def test_checkpoint_resume_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    _fake_cache(tmp_path, rng)
    base = dict(cache_dir=str(tmp_path / "cache"), width=4, audio_width=4, embed_dim=16, chunks=2, chunk_len=4,
                warmup=2, eval_every=0, rescan_every=0, threads=1)
    # run A: straight through 6 + 2 steps
    a = TrainConfig(out_dir=str(tmp_path / "a"), steps1=6, steps2=2, **base)
    Trainer(a, log=lambda m: None).run()
    # run B: interrupted after 3 steps of stage 1 (checkpoint written), then resumed
    b = TrainConfig(out_dir=str(tmp_path / "b"), steps1=6, steps2=2, **base)
    with pytest.raises(TrainingInterrupted):
        Trainer(b, log=lambda m: None, stop_after=3).run()
    ck = read_checkpoint(tmp_path / "b" / "latest.pt")
    assert ck["extra"]["stage"] == 1 and ck["extra"]["step"] == 3
    assert "state" in ck["extra"]["optimizer"] and ck["extra"]["optimizer"]["state"]
    Trainer(b, log=lambda m: None).run(resume=True)
    fa = read_checkpoint(tmp_path / "a" / "final.pt")
    fb = read_checkpoint(tmp_path / "b" / "final.pt")
    for k, v in fa["state_dict"].items():
        assert torch.allclose(v.float(), fb["state_dict"][k].float(), atol=1e-5), k
    assert fa["fingerprint"] == fb["fingerprint"]
    assert (tmp_path / "b" / "train_log.csv").read_text().count("\n") > 2
    assert json.loads((tmp_path / "a" / "refinement.json").read_text())["groups"]["synthetic"]["windows"] > 0



def test_cepstral_warp_is_identity_at_one_and_stretches_the_envelope():
    from speakerid.features import compute_mfcc
    from speakerid.train.data import cepstral_warp_matrix

    np.testing.assert_allclose(cepstral_warp_matrix(1.0), np.eye(12), atol=1e-6)
    # a tone's spectral peak moves up the mel axis when the envelope is stretched (alpha > 1):
    # compare against the MFCC of a higher tone, which the warped cepstra must approach
    sr = 16000
    t = np.arange(sr) / sr
    low, high = (compute_mfcc(np.sin(2 * np.pi * f * t).astype(np.float32)).mean(1) for f in (1000.0, 1300.0))
    warped = cepstral_warp_matrix(1.15) @ low[1:]
    assert np.linalg.norm(warped - high[1:]) < 0.5 * np.linalg.norm(low[1:] - high[1:])


def test_audio_warp_keeps_energy_and_shape():
    from speakerid.train.data import augment_audio

    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 13, 50)
    b = augment_audio(a, g, warp=0.1)
    assert b.shape == a.shape and not torch.equal(a, b)
    # c0 changes only by the loudness offset and a little noise: per run, a near-constant shift
    assert float((b[:, 0] - a[:, 0]).std(1).max()) < 0.2


def test_video_aspect_stretch_widens_and_blur_softens():
    from speakerid.train.data import augment_video

    x = torch.full((64, 5, 111, 111), 60, dtype=torch.uint8)
    x[:, :, 50:61, 40:71] = 200  # a 31 px wide, 11 px tall bright 'mouth'
    g = torch.Generator().manual_seed(1)
    y = augment_video(x, g, strength=0.0, aspect=0.3)
    widths = (y[:, 0, 55] > 130).sum(1).float()
    heights = (y[:, 0, :, 55] > 130).sum(1).float()
    # wider mouths come out flatter, narrower ones taller; all frames of a window alike
    assert widths.max() - widths.min() > 8
    assert torch.corrcoef(torch.stack([widths, heights]))[0, 1] < -0.8
    assert torch.allclose(y[:, 0], y[:, 4], atol=12)  # only the per-pixel noise differs
    sharp = augment_video(x, torch.Generator().manual_seed(2), strength=0.0)
    soft = augment_video(x, torch.Generator().manual_seed(2), strength=0.0, blur=1.0)
    edge = lambda z: (z[:, 0, 45:66, 40:71].diff(dim=1).abs().amax(dim=(1, 2)))  # noqa: E731
    assert float(edge(soft).mean()) < 0.8 * float(edge(sharp).mean())


def test_shift_mfcc_delays_and_fills_even_past_the_clip():
    from speakerid.train.loop import shift_mfcc

    m = np.arange(2 * 30, dtype=np.float32).reshape(2, 30)
    fill = np.array([-1.0, -2.0])
    late = shift_mfcc(m, 5, fill)  # audio delayed: column 5 now holds what column 0 held
    np.testing.assert_array_equal(late[:, 5:], m[:, :25])
    assert (late[0, :5] == -1).all() and (late[1, :5] == -2).all()
    early = shift_mfcc(m, -5, fill)
    np.testing.assert_array_equal(early[:, :25], m[:, 5:])
    for off in (30, -30, 40, -40):  # a clip shorter than the shift: nothing of it is left
        out = shift_mfcc(m, off, fill)
        assert out.shape == m.shape and (out[0] == -1).all()


def test_windows_over_digital_silence_are_not_used():
    from pathlib import Path

    from speakerid.train.cache import CachedClip, usable_windows

    n = 40
    mfcc = np.random.default_rng(0).normal(0, 1, (13, 4 * n)).astype(np.float32)
    mfcc[0] = 5.0
    mfcc[0, 80:] = np.log(np.finfo(float).eps)  # the audio track is all zeros from frame 20 on
    clip = CachedClip(path=Path("x.npz"), crops=np.zeros((n, 111, 111), np.uint8), usable=np.ones(n, bool),
                      shot=np.zeros(n, np.int16), mfcc=mfcc, meta={})
    w = usable_windows(clip)
    # window i hears columns [4i, 4i+20): usable while at most 10 of them are silent
    assert w.min() == 0 and w.max() == 17 and w.size == 18
    mfcc[0, :] = np.log(np.finfo(float).eps)
    assert usable_windows(clip).size == 0


def test_group_balance_draws_small_groups_more_often():
    rng = np.random.default_rng(0)
    big = [_synthetic_clip(rng, 60, f"b{i}") for i in range(6)]
    small = [_synthetic_clip(rng, 60, "s0")]
    for c in small:
        c.group = "small"
    clips = big + small

    def share_small(balance: float) -> float:
        s = WindowSampler(clips, chunk_len=5, group_balance=balance)
        r = np.random.default_rng(1)
        groups = [g for _ in range(200) for g in s.batch(r, 8)["groups"]]
        return groups.count("small") / len(groups)

    assert 0.08 < share_small(1.0) < 0.22  # one clip in seven: drawn by its size
    assert 0.4 < share_small(0.0) < 0.6  # two groups: each drawn half the time


def test_weight_average_follows_the_weights_with_its_decay():
    torch.manual_seed(0)
    model = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=16))
    avg = WeightAverage(model, decay=0.9)
    p = next(model.parameters())
    for _ in range(200):  # the weights jump to a new value and stay there
        with torch.no_grad():
            p.fill_(1.0)
        avg.update(model)
    q = next(avg.model.parameters())
    assert torch.allclose(q, torch.ones_like(q), atol=1e-6)  # long after the jump: caught up
    # one step after a second jump it has moved exactly (1 − decay) of the way
    with torch.no_grad():
        p.fill_(3.0)
    avg.update(model)
    assert torch.allclose(q, torch.full_like(q, 1.0 + 0.1 * 2.0), atol=1e-5)
    # the first update uses decay 2/11, not 0.999: the average does not keep the weights it
    # started from (here 3.0) for thousands of steps
    fresh = WeightAverage(model, decay=0.999)
    with torch.no_grad():
        p.fill_(-2.0)
    fresh.update(model)
    assert torch.allclose(next(fresh.model.parameters()), torch.full_like(q, 3.0 * 2 / 11 - 2.0 * 9 / 11), atol=1e-5)
    assert not any(x.requires_grad for x in avg.model.parameters())
    with pytest.raises(ValueError):
        WeightAverage(model, decay=1.0)


def _straight_and_resumed(tmp_path, stop_after: int, on_interrupt=None, **overrides) -> tuple[dict, dict]:
    """Train on the fake cache once straight through (out ``a``) and once interrupted after
    ``stop_after`` steps (``on_interrupt(latest checkpoint)`` is called then) and resumed (out
    ``b``); the two final checkpoints."""
    base = dict(cache_dir=str(tmp_path / "cache"), width=4, audio_width=4, embed_dim=16, chunks=2, chunk_len=4,
                warmup=2, eval_every=0, rescan_every=0, threads=1, steps1=6, steps2=2)
    base.update(overrides)
    Trainer(TrainConfig(out_dir=str(tmp_path / "a"), **base), log=lambda m: None).run()
    b = TrainConfig(out_dir=str(tmp_path / "b"), **base)
    with pytest.raises(TrainingInterrupted):
        Trainer(b, log=lambda m: None, stop_after=stop_after).run()
    if on_interrupt is not None:
        on_interrupt(read_checkpoint(tmp_path / "b" / "latest.pt"))
    Trainer(b, log=lambda m: None).run(resume=True)
    return read_checkpoint(tmp_path / "a" / "final.pt"), read_checkpoint(tmp_path / "b" / "final.pt")


def test_training_with_weight_average_ships_the_average_and_resumes(tmp_path):
    _fake_cache(tmp_path, np.random.default_rng(0))
    def three_updates(latest):  # the interrupted run's checkpoint holds the average after 3 steps
        assert latest["extra"]["ema"]["updates"] == 3

    fa, fb = _straight_and_resumed(tmp_path, 3, on_interrupt=three_updates, ema=0.5)
    la = read_checkpoint(tmp_path / "a" / "final_live.pt")
    assert fa["fingerprint"] == fb["fingerprint"]  # the average resumes exactly too
    assert fa["fingerprint"] != la["fingerprint"]  # and it is not the last step's weights
    k = next(k for k, v in fa["state_dict"].items() if v.dtype.is_floating_point and v.ndim == 4)
    assert not torch.allclose(fa["state_dict"][k].float(), la["state_dict"][k].float())


def test_clip_alignment_finds_the_clips_own_offset():
    rng = np.random.default_rng(0)
    shifts = np.arange(-MAX_SHIFT, MAX_SHIFT + 1)
    # 30 windows whose distance dips at +8 columns (audio 80 ms late), noisy, partly silent
    curves = 1.0 + 0.05 * rng.random((30, shifts.size)) - 0.3 * np.exp(-((shifts - 8) / 3.0) ** 2)
    curves[:10] = 1.0 + 0.05 * rng.random((10, shifts.size))  # silent windows: no dip, little weight
    curves[:, :40] = np.inf  # a short clip: the far shifts on one side leave the audio
    assert clip_alignment(curves, max_cols=30) == 8
    assert clip_alignment(curves, max_cols=5) is None  # the minimum is beyond the range: on its edge
    assert clip_alignment(curves[:5], max_cols=30) == 0  # too few windows to move the clip
    assert clip_alignment(curves, max_cols=30, min_windows=31) == 0


def test_sampler_takes_the_positive_at_the_clips_own_offset():
    rng = np.random.default_rng(0)
    c = _synthetic_clip(rng, name="a")
    c.offset = 7  # audio 70 ms late: frame i goes with column 4i + 7
    s = WindowSampler([c], chunk_len=4)
    b = s.batch(np.random.default_rng(3), 1)
    i0 = int(c.windows[s.widx[np.random.default_rng(3).integers(0, len(s), 1)[0]]])  # the run it drew
    pos_audio = b["audio"][0, :, MAX_SHIFT:MAX_SHIFT + 20].numpy()
    assert np.array_equal(pos_audio, c.mfcc[:, 4 * i0 + 7:4 * i0 + 27])
    # audio 0.5 s early: the first windows' positives would start before the audio → invalid
    c.offset = -MAX_ALIGN
    s = WindowSampler([c], chunk_len=4)
    b = s.batch(np.random.default_rng(5), 16)
    i0 = c.windows[s.widx[np.random.default_rng(5).integers(0, len(s), 16)]]
    first = 4 * (i0[:, None] + np.arange(4)).ravel() - MAX_ALIGN
    assert np.array_equal(b["valid"][:, MAX_SHIFT].numpy(), (first >= 0) & (first + 20 <= c.num_cols))
    assert not b["valid"][:, MAX_SHIFT].all() and b["valid"][:, MAX_SHIFT].any()


def test_training_with_clip_alignment_runs_and_resumes_exactly(tmp_path):
    _fake_cache(tmp_path, np.random.default_rng(0))
    fa, fb = _straight_and_resumed(tmp_path, 4, align_cols=20, align_at=3)
    assert fa["fingerprint"] == fb["fingerprint"]
    rows = json.loads((tmp_path / "a" / "refinement_clips.json").read_text())
    assert rows and all("offset_ms" in r for r in rows)
    assert all(r["offset_ms"] is None or abs(r["offset_ms"]) <= 200 for r in rows)
    with pytest.raises(ValueError):
        Trainer(TrainConfig(out_dir=str(tmp_path / "c"), cache_dir=str(tmp_path / "cache"), align_cols=MAX_ALIGN + 1))


def test_training_with_mouth_references_feeds_them_and_resumes_exactly(tmp_path):
    """--video-ref: the sampler adds each window's reference (the mean crop of its clip around
    the window's centre frame) as a 6th channel, training and evaluation run on it, and a run
    interrupted and resumed ends with the same weights."""
    rng = np.random.default_rng(0)
    m = SyncNet(SyncNetConfig(width=4, video_ref=9))
    c = _synthetic_clip(rng, name="a")
    c.ref = m.mouth_reference(c.crops)
    s = WindowSampler([c], chunk_len=4)
    b = s.batch(np.random.default_rng(3), 2)
    i0 = c.windows[s.widx[np.random.default_rng(3).integers(0, len(s), 2)]]
    assert b["video"].shape == (8, 6, 111, 111)
    for k, i in enumerate((i0[:, None] + np.arange(4)).ravel()):
        assert np.array_equal(b["video"][k, :5].numpy(), c.crops[i:i + 5])
        assert np.array_equal(b["video"][k, 5].numpy(), c.ref[i + 2])

    _fake_cache(tmp_path, rng)
    fa, fb = _straight_and_resumed(tmp_path, 4, video_ref=9, eval_every=3)
    assert fa["config"]["video_ref"] == 9 and fa["fingerprint"] == fb["fingerprint"]


def test_training_with_variance_normalisation_records_it_and_resumes_exactly(tmp_path):
    _fake_cache(tmp_path, np.random.default_rng(0))
    fa, fb = _straight_and_resumed(tmp_path, 4, cvn=1)
    assert fa["config"]["cvn"] is True and fa["fingerprint"] == fb["fingerprint"]
    assert load_model(tmp_path / "a" / "final.pt").config.cvn


def test_the_model_takes_its_crop_geometry_from_the_cache_and_refuses_a_mixed_one(tmp_path):
    from speakerid.train.loop import evaluate

    _fake_cache(tmp_path, np.random.default_rng(0), geometry="stable")
    base = dict(cache_dir=str(tmp_path / "cache"), width=4, audio_width=4, embed_dim=16, chunks=2, chunk_len=4,
                warmup=2, eval_every=0, rescan_every=0, threads=1, steps1=2, steps2=0, align_cols=0)
    Trainer(TrainConfig(out_dir=str(tmp_path / "a"), **base), log=lambda m: None).run()
    ck = read_checkpoint(tmp_path / "a" / "final.pt")
    assert ck["config"]["crop_geometry"] == "stable"
    # a model of the other geometry is not measured on these crops
    with pytest.raises(ValueError, match="crop geometry 'stable'"):
        evaluate(SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=16)), tmp_path / "cache", clip_level=False)
    # one clip of the old framing among them: training stops with the reason
    d = tmp_path / "cache" / "train" / "synthetic"
    z = dict(np.load(d / "clip0.npz"))
    z["meta"] = json.dumps({"group": "synthetic"})  # written before geometries were recorded: "mouth"
    np.savez(d / "clip0.npz", **z)
    with pytest.raises(TrainingDataError, match="mixes crop geometries"):
        Trainer(TrainConfig(out_dir=str(tmp_path / "b"), **base), log=lambda m: None).run()


def test_default_recipe_builds_the_packaged_architecture():
    """TrainConfig's defaults are the shipped recipe (docs/model.md): the network they build has
    the packaged weights' shapes, so `speakerid train` with no flags reproduces that model."""
    from speakerid.model import load_model

    cfg = TrainConfig()
    packaged = load_model().config
    for name in ("width", "audio_width", "embed_dim", "mouth_px", "cmn_cols"):
        assert getattr(cfg, name) == getattr(packaged, name), name
    assert bool(cfg.cvn) == bool(packaged.cvn) and bool(cfg.video_ref) == bool(packaged.video_ref)


def _ramp_clip(n_frames: int = 80, offset: int = 0) -> ClipData:
    """Crops whose grey level is the frame number and MFCC whose every row is the column number:
    after any resampling, a value says which source time it came from."""
    T = 4 * n_frames
    crops = np.broadcast_to(np.arange(n_frames, dtype=np.uint8)[:, None, None], (n_frames, 111, 111)).copy()
    mfcc = np.broadcast_to(np.arange(T, dtype=np.float32), (13, T))
    pad = np.full((13, PAD), -1.0, np.float32)
    w = np.arange(n_frames - 4)
    return ClipData(name="ramp", group="synthetic", crops=crops,
                    mfcc_padded=np.concatenate([pad, mfcc, pad], 1), num_cols=T, windows=w,
                    keep=np.ones(w.size, bool), offset=offset)


@pytest.mark.parametrize("offset", [0, 6])
def test_speed_perturbation_keeps_audio_and_video_in_sync(offset):
    """--augment-speed: each run plays at its own rate, and the audio at shift 0 of every window
    still starts where that window's first frame is, in source time (4 columns a frame, plus the
    clip's own offset); the shifts scale with the rate; runs that would read past the clip's
    usable windows play at rate 1."""
    c = _ramp_clip(offset=offset)
    s = WindowSampler([c], chunk_len=4)
    b = s.batch(np.random.default_rng(1), 32, speed=0.2)
    rates = b["rate"]
    assert ((rates >= 0.8) & (rates <= 1.2)).all() and (rates != 1).sum() > 20
    v = b["video"][:, :, 0, 0].numpy().astype(np.float64).reshape(32, 4, 5)
    a = b["audio"][:, 0, :].numpy()
    checked = 0
    for run in range(32):
        r = rates[run]
        src0 = v[run, 0, 0]  # source frame of the run's first output frame (an integer: i0)
        for k in range(4):
            # output frame k + j of window k comes from source frame i0 + (k + j)·rate
            assert np.allclose(v[run, k], src0 + (k + np.arange(5)) * r, atol=0.51)
            t_video = src0 + k * r
            u = 4 * k + MAX_SHIFT  # window k's audio at shift 0
            if b["valid"][run * 4 + k, MAX_SHIFT]:
                assert a[run, u] == pytest.approx(4 * t_video + offset, abs=1e-3)
                # a shift of 10 output columns is 10·rate source columns
                if b["valid"][run * 4 + k, MAX_SHIFT + 10]:
                    assert a[run, u + 10] == pytest.approx(4 * t_video + offset + 10 * r, abs=1e-3)
                checked += 1
    assert checked > 60
    # a run at the clip's very end cannot play faster: it falls back to rate 1
    s.widx = np.array([c.windows.size - 4]); s.cidx = np.array([0]); s.p = None
    b = s.batch(np.random.default_rng(2), 8, speed=0.2)
    assert (b["rate"] <= 1).all() and (b["rate"] < 1).any()
    # speed 0 leaves the batch exactly as before (the shipped recipe's draws are unchanged)
    s = WindowSampler([c], chunk_len=4)
    b0 = s.batch(np.random.default_rng(3), 4)
    b1 = s.batch(np.random.default_rng(3), 4, speed=0.0)
    assert torch.equal(b0["video"], b1["video"]) and torch.equal(b0["audio"], b1["audio"])


def test_training_with_speed_perturbation_resumes_exactly(tmp_path):
    _fake_cache(tmp_path, np.random.default_rng(0))
    fa, fb = _straight_and_resumed(tmp_path, 4, augment_speed=0.1)
    assert fa["fingerprint"] == fb["fingerprint"]


def test_babble_mixing_in_the_mel_domain_comes_close_to_the_real_mixture():
    """babble_mfcc mixes two clips' speech from their MFCC alone: far below the target it gives
    the target back, and at 0 dB it is nearer the MFCC of the waveforms really mixed than the
    clean target is."""
    import speakerid.examples as examples
    from speakerid.features import compute_mfcc
    from speakerid.media import read_audio
    from speakerid.train.data import babble_mfcc

    a = read_audio(Path(__file__).parent / "data" / "grid_s1_lgwg2n.mp4")
    b = read_audio(examples.path())[16000:16000 + a.size]
    ma, mb = compute_mfcc(a), compute_mfcc(b)
    np.testing.assert_allclose(babble_mfcc(ma, mb, 300.0), ma, atol=1e-3)
    e_a, e_b = np.exp(ma[0].astype(np.float64)), np.exp(mb[0].astype(np.float64))
    g = np.sort(e_a)[e_a.size // 2:].mean() / e_b.mean()  # the power gain of 0 dB, as babble_mfcc sets it
    real = compute_mfcc((a + np.sqrt(g) * b).astype(np.float32))
    mixed = babble_mfcc(ma, mb, 0.0)
    err_mixed = np.abs(mixed - real).mean()
    err_clean = np.abs(ma - real).mean()
    assert err_mixed < 0.6 * err_clean, (err_mixed, err_clean)


def test_a_packed_cache_unpacks_to_the_same_clips_and_trains(tmp_path):
    """pack → unpack on a cache made from the real GRID clip: same frames, shots, metadata, MFCC
    to float16, crops to about a grey level; a truncated pack is refused and leaves nothing."""
    from conftest import GRID_CLIP

    from speakerid.train.cache import load_clip, preprocess_clip
    from speakerid.train.pack import pack_cache, unpack_cache

    src = tmp_path / "cache"
    preprocess_clip(GRID_CLIP, src / "train" / "grid" / "a.npz", {"group": "grid"}, crop_geometry="stable")
    preprocess_clip(GRID_CLIP, src / "eval" / "a.npz", {"group": "eval"}, crop_geometry="stable",
                    detector="retinaface")
    # the cache records its detector: centerface unless asked (the shipped weights' cache)
    assert load_clip(src / "train" / "grid" / "a.npz").meta["detector"] == "centerface"
    assert load_clip(src / "eval" / "a.npz").meta["detector"] == "retinaface"
    packed = tmp_path / "cache.pack.npz"
    r = pack_cache(src, packed, log=lambda m: None)
    assert r["clips"] == 2 and r["video_frames"] > 100 and r["bytes"] < 0.1 * r["video_frames"] * 111 * 111
    out = tmp_path / "unpacked"
    assert unpack_cache(packed, out, log=lambda m: None) == {"clips": 2, "written": 2}
    for rel in ("train/grid/a.npz", "eval/a.npz"):
        a, b = load_clip(src / rel), load_clip(out / rel)
        assert a.meta == b.meta and np.array_equal(a.usable, b.usable) and np.array_equal(a.shot, b.shot)
        assert np.abs(a.mfcc - b.mfcc).max() < 0.05
        err = np.abs(a.crops.astype(int) - b.crops.astype(int))[a.usable]
        assert err.mean() < 2.5 and not b.crops[~a.usable].any()
    cfg = TrainConfig(cache_dir=str(out), out_dir=str(tmp_path / "run"), width=4, audio_width=4, embed_dim=16,
                      chunks=2, chunk_len=4, steps1=2, steps2=1, warmup=1, eval_every=0, rescan_every=0,
                      align_cols=0, threads=1)
    assert Trainer(cfg, log=lambda m: None).run().is_file()
    # a pack whose video was cut short: refused, and the clip it reached is not written
    z = dict(np.load(packed))
    z["video"] = z["video"][: z["video"].size // 3]
    cut = tmp_path / "cut.pack.npz"
    np.savez(cut, **z)
    with pytest.raises(TrainingDataError, match="ends before"):
        unpack_cache(cut, tmp_path / "cut", log=lambda m: None)
    assert not list((tmp_path / "cut").rglob("*.npz"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("device, words", [("cuda", "sees no CUDA GPU"), ("tpu0", "not a torch device"),
                                           ("meta", "'cpu' or 'cuda' only")])
def test_training_refuses_a_device_it_cannot_use_before_any_work(tmp_path, device, words):
    from speakerid.errors import InvalidSettingError

    cfg = TrainConfig(cache_dir=str(tmp_path / "none"), out_dir=str(tmp_path / "run"), device=device)
    with pytest.raises(InvalidSettingError, match=words):
        Trainer(cfg, log=lambda m: None)
    assert not (tmp_path / "run").exists()
