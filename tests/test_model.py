"""The SyncNet model: shapes, the sliding audio path, checkpoints, and the shipped weights on a
real clip (tests/data/grid_s1_lgwg2n.mp4, GRID corpus, CC-BY-4.0)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from speakerid.errors import ModelWeightsError
from speakerid.features import COLS_PER_FRAME, compute_mfcc
from speakerid.model import (Embedder, SyncNet, SyncNetConfig, load_model, model_from_checkpoint, read_checkpoint,
                             save_checkpoint)

CLIP = Path(__file__).parent / "data" / "grid_s1_lgwg2n.mp4"
WEIGHTS = Path(__file__).parents[1] / "speakerid" / "weights" / "syncnet.pt"


def test_shapes_and_normalisation():
    m = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=32)).eval()
    v = m.embed_video(torch.randint(0, 255, (3, 5, 111, 111), dtype=torch.uint8))
    a = m.embed_audio(torch.randn(3, 13, 20))
    assert v.shape == a.shape == (3, 32)
    assert torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-5)
    d = m(torch.randint(0, 255, (3, 5, 111, 111), dtype=torch.uint8), torch.randn(3, 13, 20))
    assert d.shape == (3,) and torch.all((d >= 0) & (d <= 2.0001))
    with pytest.raises(ValueError):
        m.embed_audio(torch.randn(1, 13, 21))


def test_sliding_audio_equals_per_window():
    m = SyncNet(SyncNetConfig(width=4, audio_width=6, embed_dim=16)).eval()
    mfcc = np.random.default_rng(0).normal(0, 5, (13, 90)).astype(np.float32)
    with torch.no_grad():
        seq = m.embed_audio_seq(torch.from_numpy(mfcc)[None])[0].T.numpy()  # (71, D)
        one = m.embed_audio(torch.from_numpy(mfcc[:, 33:53])[None])[0].numpy()
    assert seq.shape == (71, 16)
    np.testing.assert_allclose(seq[33], one, atol=1e-5)
    e = Embedder(m)
    np.testing.assert_allclose(e.audio(mfcc, np.arange(70)), seq[:70], atol=1e-5)  # sliding path
    np.testing.assert_allclose(e.audio(mfcc, np.array([0, 33])), seq[[0, 33]], atol=1e-5)  # per-window path


def test_cmn_model_normalises_whole_clips_the_same_on_every_path():
    # with cepstral mean normalisation the Embedder normalises the whole clip, then windows it:
    # the sliding and per-window paths agree, and a constant channel offset changes nothing
    m = SyncNet(SyncNetConfig(width=4, audio_width=6, embed_dim=16, cmn_cols=51)).eval()
    mfcc = np.random.default_rng(0).normal(0, 5, (13, 120)).astype(np.float32)
    e = Embedder(m)
    seq = e.sequence(mfcc)
    np.testing.assert_allclose(e.audio(mfcc, np.array([3, 40, 90])), seq[[3, 40, 90]], atol=1e-5)
    np.testing.assert_allclose(e.sequence(mfcc + 7.0), seq, atol=1e-4)
    prepared = m.prepare_mfcc(mfcc)
    np.testing.assert_allclose(e.sequence(prepared[:, 30:80], prepared=True), seq[30:61], atol=1e-5)


@pytest.mark.parametrize("step", [1, 2])
def test_stored_sequence_matches_the_whole_clip(step):
    """Embedder.stored_sequence (MFCC arriving in blocks, normalised and embedded a chunk at a
    time with the normalisation's context, rows on disk) gives the whole-clip numbers, also
    when the chunks are far shorter than the normalisation window."""
    m = SyncNet(SyncNetConfig(width=4, audio_width=6, embed_dim=16, cmn_cols=51)).eval()
    mfcc = np.random.default_rng(0).normal(0, 5, (13, 300)).astype(np.float32)
    e = Embedder(m)
    seq = e.sequence(mfcc)
    blocks = np.split(mfcc, [7, 100, 101, 250], axis=1)
    for dtype, tol in ((np.float32, 1e-5), (np.float16, 2e-3)):
        rows, T = e.stored_sequence(iter(blocks), step=step, dtype=dtype, chunk=16)
        assert T == 300 and rows.dtype == dtype and len(rows) == -(-seq.shape[0] // step)
        np.testing.assert_allclose(np.asarray(rows, np.float32), seq[::step], atol=tol)


def test_cvn_model_ignores_a_recording_gain_and_offset_on_every_path():
    # mean and variance normalisation: a cepstral gain (a voice's or a channel's range) and a
    # constant offset change nothing, whole clip or cut with the context the streaming path reads
    m = SyncNet(SyncNetConfig(width=4, audio_width=6, embed_dim=16, cmn_cols=51, cvn=True)).eval()
    mfcc = np.random.default_rng(0).normal(0, 5, (13, 120)).astype(np.float32)
    gain = np.random.default_rng(1).uniform(0.5, 2.0, (13, 1)).astype(np.float32)
    e = Embedder(m)
    seq = e.sequence(mfcc)
    np.testing.assert_allclose(e.sequence(mfcc * gain + 7.0), seq, atol=1e-3)
    prepared = m.prepare_mfcc(mfcc)
    np.testing.assert_allclose(e.sequence(prepared[:, 30:80], prepared=True), seq[30:61], atol=1e-5)
    plain = SyncNet(SyncNetConfig(width=4, audio_width=6, embed_dim=16, cmn_cols=51)).eval()
    assert not np.allclose(plain.prepare_mfcc(mfcc * gain), plain.prepare_mfcc(mfcc), atol=1e-3)


def test_mouth_reference_is_the_centred_mean_and_goes_with_every_window():
    """A model with mouth references sees each window's 5 crops less the mean crop of its track
    over a centred span (cut at the track's ends): a face's look at rest drops out, and a whole
    track brightened or darkened by the same amount gives the same embeddings."""
    m = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=16, mouth_px=75, video_ref=9)).eval()
    crops = np.random.default_rng(1).integers(0, 200, (30, 111, 111)).astype(np.uint8)
    ref = m.mouth_reference(crops)
    for i in (0, 3, 4, 15, 25, 29):
        lo, hi = max(0, i - 4), min(30, i + 5)
        np.testing.assert_array_equal(ref[i], np.rint(crops[lo:hi].mean(0)).astype(np.uint8))
    assert SyncNet(SyncNetConfig(width=4)).mouth_reference(crops) is None
    short = SyncNet(SyncNetConfig(width=4, video_ref=75)).mouth_reference(crops)
    np.testing.assert_array_equal(short, np.broadcast_to(np.rint(crops.mean(0)).astype(np.uint8), crops.shape))

    e = Embedder(m)
    starts = np.array([0, 7, 25])
    got = e.video(crops, starts)
    win = np.stack([np.concatenate([crops[s:s + 5], ref[s + 2][None]]) for s in starts])
    np.testing.assert_allclose(got, e.windows(win), atol=1e-6)
    np.testing.assert_allclose(e.video(crops + np.uint8(40), starts), got, atol=1e-5)
    with pytest.raises(ValueError, match="6th channel"):
        e.windows(win[:, :5])
    # with the frames themselves too: 10 input channels, and a brighter track is no longer the same
    raw = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=16, mouth_px=75, video_ref=9,
                                video_ref_raw=True)).eval()
    assert raw.video[1][0].in_channels == 10 and m.video[1][0].in_channels == 5
    er = Embedder(raw)
    assert er.video(crops, starts).shape == (3, 16)
    assert np.abs(er.video(crops + np.uint8(40), starts) - er.video(crops, starts)).max() > 1e-3


def test_checkpoint_round_trip(tmp_path):
    m = SyncNet(SyncNetConfig(width=4, audio_width=4, embed_dim=16))
    m.mfcc_mean.fill_(3.0)
    fp = save_checkpoint(m, tmp_path / "m.pt", half=False, meta={"step": 7})
    ck = read_checkpoint(tmp_path / "m.pt")
    m2 = model_from_checkpoint(ck)
    assert m2.fingerprint == fp and m2.meta["step"] == 7 and float(m2.mfcc_mean[0]) == 3.0
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelWeightsError):
        read_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ModelWeightsError):
        load_model(tmp_path / "missing.pt")


def test_shipped_weights_find_true_alignment():
    """The packaged model, offline, on a real in-sync clip: the distance at the true alignment is
    lower than at ±10 frames for most windows."""
    from speakerid.faces import analyze_faces
    from speakerid.media import read_audio

    assert WEIGHTS.is_file(), "speakerid/weights/syncnet.pt must ship with the package"
    model = load_model(device="cpu")
    assert not model.training and model.fingerprint
    a = analyze_faces(CLIP)
    track = max(a.tracks, key=lambda t: t.model_frames.size)
    mfcc = compute_mfcc(read_audio(CLIP, video_start_s=a.info.video_start_s))
    emb = Embedder(model)
    shift = 10 * COLS_PER_FRAME
    starts = [k for k in range(track.model_frames.size - 4)
              if track.scorable[k:k + 5].all()
              and 0 <= COLS_PER_FRAME * track.model_frames[k] - shift
              and COLS_PER_FRAME * track.model_frames[k] + shift + 20 <= mfcc.shape[1]]
    starts = np.asarray(starts)
    assert starts.size >= 10
    v = emb.video(track.crops, starts)
    cols = COLS_PER_FRAME * track.model_frames[starts]
    d0 = np.linalg.norm(v - emb.audio(mfcc, cols), axis=1)
    dm = np.linalg.norm(v - emb.audio(mfcc, cols - shift), axis=1)
    dp = np.linalg.norm(v - emb.audio(mfcc, cols + shift), axis=1)
    share = float(np.mean((d0 < dm) & (d0 < dp)))
    assert share > 0.6, share
