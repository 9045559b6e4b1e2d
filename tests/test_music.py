"""Music features (duet_env.music) on synthesised click tracks and tones."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from duet_env import music

SR = 22050  # written at a rate other than 15360 so the resampling path is exercised


def click_track(duration: float, bpm: float = 120.0, sr: int = SR, tone_hz: float | None = 440.0) -> np.ndarray:
    """Decaying noise bursts on every beat (first beat at t=0), plus an optional quiet tone."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(duration * sr), np.float32)
    burst = int(0.03 * sr)
    envelope = np.exp(-np.arange(burst) / (0.005 * sr))
    period = 60.0 / bpm
    for k in range(int(duration / period) + 1):
        start = int(round(k * period * sr))
        n = min(burst, len(y) - start)
        if n > 0:
            y[start:start + n] += (rng.standard_normal(n) * envelope[:n] * 0.8).astype(np.float32)
    if tone_hz is not None:
        t = np.arange(len(y)) / sr
        y += (0.1 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    return y


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DUET_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def click_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "click.wav"
    sf.write(path, click_track(6.0), SR, subtype="PCM_16")
    return path


def test_shape_and_frame_count(click_wav):
    feats = music.extract_features(click_wav, cache=False)
    assert feats.dtype == np.float32
    assert feats.shape[1] == 54
    # centred frames: T = 1 + floor(N / 512) at 15360 Hz = 6 s * 30 fps + 1
    assert abs(feats.shape[0] - 6.0 * 30) <= 2
    assert np.all(np.isfinite(feats))
    assert set(np.unique(feats[:, 53])) <= {0.0, 1.0}
    assert feats[:, 52].min() >= 0.0  # onset strength is a rectified flux


def test_chroma_column_of_a_pure_tone(tmp_path):
    # A 440 Hz tone is pitch class A: chroma bin 9 of C..B, i.e. column 40 + 9.
    t = np.arange(int(3 * SR)) / SR
    path = tmp_path / "a440.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440.0 * t), SR)
    feats = music.extract_features(path, cache=False)
    chroma = feats[:, 40:52].mean(axis=0)
    assert int(np.argmax(chroma)) == 9
    assert chroma[9] > 2 * np.delete(chroma, 9).max()


def test_click_track_beats_match_clicks(click_wav):
    feats = music.extract_features(click_wav, cache=False)
    beats = music.beat_frames(feats)
    clicks = np.arange(0, feats.shape[0], 15)  # 120 bpm = one click every 0.5 s = 15 frames
    assert len(beats) >= 8
    # most detected beats sit within 2 frames of a true click ...
    dist_to_click = np.abs(beats[:, None] - clicks[None, :]).min(axis=1)
    assert np.mean(dist_to_click <= 2) >= 0.8
    # ... and most clicks after the tracker's start-up have a beat within 2 frames
    late_clicks = clicks[clicks >= 30]
    dist_to_beat = np.abs(late_clicks[:, None] - beats[None, :]).min(axis=1)
    assert np.mean(dist_to_beat <= 2) >= 0.8
    assert np.array_equal(beats, np.flatnonzero(feats[:, 53]))


def test_cache_second_call_reads_the_file(click_wav, monkeypatch):
    first = music.extract_features(click_wav)
    cached = music.cache_path(click_wav)
    assert cached.is_file() and cached.parent.name == "music"
    assert not list(cached.parent.glob("*.tmp"))  # the atomic write left no temp file

    import librosa

    def no_decoding(*args, **kwargs):
        raise AssertionError("the second call must not decode audio")

    monkeypatch.setattr(librosa, "load", no_decoding)
    second = music.extract_features(click_wav)
    np.testing.assert_array_equal(first, second)


def test_cache_key_follows_content_not_name(tmp_path, click_wav):
    copy = tmp_path / "renamed.wav"
    copy.write_bytes(click_wav.read_bytes())
    other = tmp_path / "other.wav"
    sf.write(other, click_track(6.0, bpm=100.0), SR, subtype="PCM_16")
    assert music.cache_path(copy) == music.cache_path(click_wav)
    assert music.cache_path(other) != music.cache_path(click_wav)


def test_corrupt_cache_entry_is_recomputed(click_wav):
    music.extract_features(click_wav)
    music.cache_path(click_wav).write_bytes(b"not an npy file")
    feats = music.extract_features(click_wav)
    assert feats.shape[1] == 54
    assert np.load(music.cache_path(click_wav)).shape == feats.shape


@pytest.mark.parametrize(
    "case, problem",
    [("corrupt", "cannot decode"), ("empty", "empty"), ("silent", "silent"), ("short", "too short")],
)
def test_bad_audio_raises_music_error(tmp_path, case, problem):
    path = tmp_path / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "silent":
        sf.write(path, np.zeros(3 * SR, np.float32), SR)
    else:
        sf.write(path, click_track(0.5), SR)
    with pytest.raises(music.MusicError) as info:
        music.extract_features(path)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_raises_file_not_found(tmp_path):
    path = tmp_path / "nowhere.mp3"
    with pytest.raises(FileNotFoundError, match="nowhere.mp3"):
        music.extract_features(path)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_other_formats(tmp_path, click_wav, fmt):
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile here cannot write {fmt}")
    y, sr = sf.read(click_wav, dtype="float32")
    path = tmp_path / f"click.{fmt.lower()}"
    sf.write(path, y, sr, format=fmt)
    ref = music.extract_features(click_wav, cache=False)
    feats = music.extract_features(path, cache=False)
    if fmt == "FLAC":  # lossless: the same samples give the same features
        np.testing.assert_allclose(feats, ref, atol=1e-3)
    else:  # lossy codecs may pad a few frames and shift beats slightly
        assert feats.shape[1] == 54 and abs(feats.shape[0] - ref.shape[0]) <= 3
        beats, ref_beats = music.beat_frames(feats), music.beat_frames(ref)
        near = np.abs(beats[:, None] - ref_beats[None, :]).min(axis=1) <= 2
        assert near.mean() >= 0.8


def test_beat_frames_rejects_wrong_shape():
    with pytest.raises(ValueError, match="54"):
        music.beat_frames(np.zeros((10, 53)))


@pytest.mark.parametrize("seconds", [0.3, 0.7, 6.0])
def test_fast_hpss_equals_librosa_bit_for_bit(seconds):
    import librosa

    from duet_env.hpss import hpss

    y = click_track(seconds, sr=music.SAMPLE_RATE)  # 10, 22 and 181 frames: around the median window
    y += 0.05 * np.random.default_rng(1).standard_normal(y.size).astype(np.float32)
    ours, theirs = hpss(y), librosa.effects.hpss(y)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == y.shape
        assert np.array_equal(a, b)
    assert not np.array_equal(ours[0], ours[1])  # harmonic and percussive parts differ
    with pytest.raises(ValueError, match="mono"):
        hpss(np.zeros((2, 100), np.float32))


@pytest.mark.parametrize("cols", [1, 9, 15, 16, 20, 31, 200])
def test_median_filter_rows_equals_scipys_2d_filter(cols):
    from scipy.ndimage import median_filter

    from duet_env.hpss import median_filter_rows

    rng = np.random.default_rng(cols)
    x = rng.integers(0, 7, (13, cols)).astype(np.float32)  # many ties
    x[0] = rng.random(cols)
    assert np.array_equal(median_filter_rows(x), median_filter(x, size=(1, 31), mode="reflect"))
    assert np.array_equal(median_filter_rows(x, 5), median_filter(x, size=(1, 5), mode="reflect"))
    with pytest.raises(ValueError, match="odd"):
        median_filter_rows(x, 4)
